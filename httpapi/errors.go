package httpapi

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	gatehouse "github.com/gatehouse/gatehouse"
)

// kindStatus is the one place where error kinds become HTTP statuses and
// the default "error" field of Infisical's error body.
var kindStatus = map[gatehouse.Kind]struct {
	status int
	name   string
}{
	gatehouse.KindInvalid:            {http.StatusBadRequest, "BadRequest"},
	gatehouse.KindValidation:         {http.StatusUnprocessableEntity, "ValidationFailure"},
	gatehouse.KindUnauthorized:       {http.StatusUnauthorized, "UnauthorizedError"},
	gatehouse.KindForbidden:          {http.StatusForbidden, "ForbiddenError"},
	gatehouse.KindPermissionDenied:   {http.StatusForbidden, "PermissionDenied"},
	gatehouse.KindPermissionBoundary: {http.StatusForbidden, "PermissionBoundaryError"},
	gatehouse.KindToken:              {http.StatusForbidden, "TokenError"},
	gatehouse.KindNotFound:           {http.StatusNotFound, "NotFound"},
	gatehouse.KindTooLarge:           {http.StatusRequestEntityTooLarge, "PayloadTooLarge"},
	gatehouse.KindUnsupportedMedia:   {http.StatusUnsupportedMediaType, "UnsupportedMediaType"},
	gatehouse.KindUnavailable:        {http.StatusServiceUnavailable, "ServiceUnavailable"},
	gatehouse.KindInternal:           {http.StatusInternalServerError, "InternalServerError"},
}

// errorBody is Infisical's error shape.
type errorBody struct {
	ReqID      string `json:"reqId"`
	StatusCode int    `json:"statusCode"`
	Message    any    `json:"message"` // a string, or the issues of a validation error
	Error      string `json:"error"`
	Details    any    `json:"details,omitempty"`
}

// writeError answers err in Infisical's error shape. Internal errors are
// logged with their cause and answered with a generic message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *gatehouse.Error
	if !errors.As(err, &e) {
		e = gatehouse.Wrap(gatehouse.KindInternal, err, "Something went wrong")
	}
	ks, ok := kindStatus[e.Kind]
	if !ok {
		ks = kindStatus[gatehouse.KindInternal]
	}
	body := errorBody{ReqID: requestID(r), StatusCode: ks.status, Message: e.Message, Error: ks.name, Details: e.Details}
	if e.Name != "" {
		body.Error = e.Name
	}
	if e.Kind == gatehouse.KindValidation {
		body.Message = e.Issues
	}
	switch e.Kind {
	case gatehouse.KindInternal:
		body.Message = "Something went wrong"
		s.log.Error("request failed", "reqId", body.ReqID, "method", r.Method, "path", r.URL.Path, "err", err)
	case gatehouse.KindUnavailable:
		s.log.Warn("dependency unavailable", "reqId", body.ReqID, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, ks.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

// newRequestID returns "req-" and 14 letters and digits, as Infisical's are.
func newRequestID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 14)
	rand.Read(b)
	for k := range b {
		b[k] = alphabet[int(b[k])%len(alphabet)]
	}
	return "req-" + string(b)
}
