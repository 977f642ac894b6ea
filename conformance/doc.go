// Package conformance checks that Infisical's own clients work against a
// Gatehouse server unchanged. It is a separate module, so that the server's
// module does not depend on the Infisical Go SDK.
//
// The tests build the gatehouse command from the parent module, start it on
// a loopback port with a throwaway SQLite database, point it at a small fake
// Entra ID started by the test, and drive it through the SDK:
//
//	go -C conformance test ./...
package conformance
