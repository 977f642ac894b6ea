// Command gatehouse is the Gatehouse machine-identity server and its CLI.
//
//	gatehouse serve                 start the server (SQLite in ./gatehouse.db, 127.0.0.1:8080)
//	gatehouse bootstrap ...         set up a fresh server: admin user, organization, admin token
//	gatehouse login azure ...       on an Azure workload: trade its Entra ID token for an access token
//	gatehouse bench ...             load-test a running server on this machine
//	gatehouse version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage: gatehouse <command> [flags]

Commands:
  serve        start the server
  bootstrap    set up a fresh server and print the admin identity's token
  login azure  log in with this Azure workload's managed identity and print an access token
  bench        load-test a running server on this machine (see BENCHMARKS.md)
  version      print the version

Run "gatehouse <command> -h" for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = serve(ctx, args[1:], stderr)
		stop()
	case "bootstrap":
		err = bootstrapCmd(args[1:], stdout, stderr)
	case "login":
		if len(args) < 2 || args[1] != "azure" {
			fmt.Fprintln(stderr, "Usage: gatehouse login azure [flags]")
			return 2
		}
		err = loginAzure(args[2:], stdout, stderr)
	case "bench":
		err = benchCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "gatehouse", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		if _, ok := err.(usageError); ok {
			return 2
		}
		return 1
	}
	return 0
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// flagSet returns a FlagSet whose flags fall back to environment variables.
func flagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v := os.Getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "gatehouse: ignoring %s=%q: not a duration\n", key, v)
	}
	return def
}

func envInt(key string, def int) int {
	if v := os.Getenv(key); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "gatehouse: ignoring %s=%q: not a number\n", key, v)
	}
	return def
}

func envBool(key string, def bool) bool {
	if v := os.Getenv(key); v != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err == nil {
			return b
		}
	}
	return def
}

// parse parses flags and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err.Error()} // an unknown flag or a bad value: exit code 2
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}
