// Package gatehouse holds Gatehouse's domain: organizations, machine
// identities, roles and their permissions, the token policy shared by every
// auth method, the claims of a Gatehouse access token, and the error type
// every layer returns. It imports nothing else from the project.
package gatehouse

import (
	"errors"
	"fmt"
)

// Kind classifies an Error. Only the HTTP layer turns a Kind into a status
// code and an Infisical-style error body.
type Kind int

const (
	KindInternal           Kind = iota // 500: a bug or an unexpected failure; never the caller's fault
	KindInvalid                        // 400 BadRequest
	KindValidation                     // 422 ValidationFailure, with Issues
	KindUnauthorized                   // 401 UnauthorizedError
	KindForbidden                      // 403 ForbiddenError
	KindPermissionDenied               // 403 PermissionDenied: the actor's role lacks the permission
	KindPermissionBoundary             // 403 PermissionBoundaryError: the target is more privileged than the actor
	KindToken                          // 403 TokenError: a bearer or Entra token failed verification
	KindNotFound                       // 404 NotFound
	KindTooLarge                       // 413 a request body over the limit
	KindUnsupportedMedia               // 415 a body in a content type the API does not read
	KindUnavailable                    // 503 a dependency (database, Entra ID) cannot be reached
)

// Error is the one error type of Gatehouse. Message is shown to the caller, so
// it must never contain a secret; Err is the cause, kept for logs only.
type Error struct {
	Kind    Kind
	Message string
	// Name, when set, replaces the default "error" field of the response
	// (Infisical puts e.g. "Forbidden access to /path" there).
	Name string
	// Issues are the validation problems of a KindValidation error.
	Issues []Issue
	// Details is extra structured data shown to the caller.
	Details any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Issue is one validation problem, in the shape of a zod issue, which is what
// Infisical's clients receive in the message array of a 422.
type Issue struct {
	Code      string   `json:"code"`
	Expected  string   `json:"expected,omitempty"`
	Received  string   `json:"received,omitempty"`
	Minimum   *float64 `json:"minimum,omitempty"`
	Maximum   *float64 `json:"maximum,omitempty"`
	Type      string   `json:"type,omitempty"`
	Inclusive *bool    `json:"inclusive,omitempty"`
	Exact     *bool    `json:"exact,omitempty"`
	Path      []any    `json:"path"`
	Message   string   `json:"message"`
}

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of the given kind whose cause is err. The cause is
// not shown to the caller.
func Wrap(kind Kind, err error, message string) *Error {
	return &Error{Kind: kind, Message: message, Err: err}
}

// ValidationError returns a KindValidation error carrying issues.
func ValidationError(issues ...Issue) *Error {
	return &Error{Kind: KindValidation, Message: "Validation failed", Issues: issues}
}

// KindOf reports the Kind of err: the Kind of the first *Error in its chain,
// or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ErrorMessage reports the caller-facing message of err, or "" when err is not
// an *Error.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

// Sentinel errors the store returns; services turn them into messages.
var (
	ErrNotFound      = &Error{Kind: KindNotFound, Message: "The requested entity is not found"}
	ErrAlreadyExists = &Error{Kind: KindInvalid, Message: "The entity already exists"}
)
