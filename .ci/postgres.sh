#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on 127.0.0.1 for the tests and prints
# the URL of its database. Usage: eval "$(.ci/postgres.sh start [PORT])"
# exports GATEHOUSE_TEST_POSTGRES_URL and PGCI_DIR; .ci/postgres.sh stop
# stops the cluster in $PGCI_DIR and removes it.
set -euo pipefail
cmd=${1:-start}
port=${2:-55432}
case "$cmd" in
start)
	export DEBIAN_FRONTEND=noninteractive
	if ! command -v pg_config >/dev/null 2>&1 || [ ! -x "$(pg_config --bindir)/initdb" ]; then
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql; } >&2
	fi
	bin="$(pg_config --bindir)"
	# Take the first free port from $port on (a cluster left running by
	# someone else must not fail the run).
	while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		port=$((port + 1))
	done
	dir="$(mktemp -d -t pgci.XXXXXX)"
	chown postgres:postgres "$dir"
	su postgres -c "$bin/initdb -D $dir/data -U postgres --auth=trust -E UTF8 --no-sync" >/dev/null
	su postgres -c "$bin/pg_ctl -D $dir/data -l $dir/server.log -w -t 60 -o '-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off' start" >&2
	"$bin/pg_isready" -h 127.0.0.1 -p "$port" >&2
	psql -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE gatehouse_test' >&2
	echo "export PGCI_DIR=$dir"
	echo "export GATEHOUSE_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:$port/gatehouse_test?sslmode=disable'"
	;;
stop)
	dir=${PGCI_DIR:?PGCI_DIR is not set}
	su postgres -c "$(pg_config --bindir)/pg_ctl -D $dir/data -m fast stop" >&2 || true
	rm -rf "$dir"
	;;
*)
	echo "usage: $0 start [PORT] | stop" >&2
	exit 2
	;;
esac
