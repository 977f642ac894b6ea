package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"

	gatehouse "github.com/gatehouse/gatehouse"
)

// MaxBodySize bounds every request body.
const MaxBodySize = 1 << 20

// readBody reads a JSON or form-encoded body into a field map. An absent
// body reads as an empty object, so that missing fields are reported as
// such. Malformed JSON, a body over MaxBodySize and other content types are
// 4xx errors.
func readBody(r *http.Request) (*fields, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodySize))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, gatehouse.Errorf(gatehouse.KindTooLarge, "Request body is too large: the limit is %d bytes", MaxBodySize)
	}
	if err != nil {
		return nil, gatehouse.Wrap(gatehouse.KindInvalid, err, "Failed to read the request body")
	}
	ct := r.Header.Get("Content-Type")
	if len(bytes.TrimSpace(raw)) == 0 {
		if ct != "" && strings.Contains(ct, "json") {
			return nil, gatehouse.Errorf(gatehouse.KindInvalid, "Body cannot be empty when content-type is set to 'application/json'")
		}
		return &fields{m: map[string]any{}}, nil
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	if ct == "" {
		mediaType, err = "application/json", nil
	}
	switch {
	case err != nil:
		return nil, gatehouse.Errorf(gatehouse.KindUnsupportedMedia, "Unsupported Media Type: %q", ct)
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, gatehouse.Wrap(gatehouse.KindInvalid, err, "Body is not valid JSON")
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, gatehouse.Errorf(gatehouse.KindInvalid, "Body is not valid JSON: unexpected data after the value")
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, gatehouse.ValidationError(gatehouse.Issue{Code: "invalid_type", Expected: "object", Received: typeName(v),
				Path: []any{}, Message: "Expected object, received " + typeName(v)})
		}
		return &fields{m: m}, nil
	case mediaType == "application/x-www-form-urlencoded":
		values, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, gatehouse.Wrap(gatehouse.KindInvalid, err, "Body is not valid form data")
		}
		m := map[string]any{}
		for k, v := range values {
			// As the JSON decoder does, replace invalid UTF-8 rather than
			// pass it to the database (PostgreSQL refuses it).
			m[k] = strings.ToValidUTF8(v[len(v)-1], "\uFFFD")
		}
		return &fields{m: m}, nil
	default:
		return nil, gatehouse.Errorf(gatehouse.KindUnsupportedMedia, "Unsupported Media Type: %s", mediaType)
	}
}

// fields reads and validates the fields of a body the way Infisical's zod
// schemas do, collecting every problem as a zod issue.
type fields struct {
	m      map[string]any
	issues []gatehouse.Issue
	ipErr  error // a trusted IP that is not an address or CIDR: a 400, reported after the issues
}

// err returns the validation error of all issues found, then a bad
// trusted IP, or nil.
func (f *fields) err() error {
	if len(f.issues) == 0 {
		return f.ipErr
	}
	return gatehouse.ValidationError(f.issues...)
}

func (f *fields) add(i gatehouse.Issue) { f.issues = append(f.issues, i) }

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

func typeIssue(path []any, expected string, v any, present bool) gatehouse.Issue {
	if !present {
		return gatehouse.Issue{Code: "invalid_type", Expected: expected, Received: "undefined", Path: path, Message: "Required"}
	}
	got := typeName(v)
	return gatehouse.Issue{Code: "invalid_type", Expected: expected, Received: got, Path: path,
		Message: fmt.Sprintf("Expected %s, received %s", expected, got)}
}

func ptr[T any](v T) *T { return &v }

// stringAt validates v as a trimmed string of at least minLen characters.
func (f *fields) stringAt(path []any, v any, present, required bool, minLen int) (string, bool) {
	if !present && !required {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		f.add(typeIssue(path, "string", v, present))
		return "", false
	}
	s = strings.TrimSpace(s)
	if strings.IndexByte(s, 0) >= 0 {
		// PostgreSQL cannot store NUL in text: refuse it here, not with a 500.
		f.add(gatehouse.Issue{Code: "invalid_string", Path: path, Message: "String must not contain the NUL character"})
		return "", false
	}
	if len([]rune(s)) < minLen {
		f.add(gatehouse.Issue{Code: "too_small", Minimum: ptr(float64(minLen)), Type: "string", Inclusive: ptr(true), Exact: ptr(false),
			Path: path, Message: fmt.Sprintf("String must contain at least %d character(s)", minLen)})
		return "", false
	}
	return s, true
}

// String reads a trimmed string field. It reports whether the field was
// present and valid.
func (f *fields) String(name string, required bool, minLen int) (string, bool) {
	v, present := f.m[name]
	return f.stringAt([]any{name}, v, present, required, minLen)
}

// Int reads an integer field within [min, max]; absent, it is def and
// reported as not present.
func (f *fields) Int(name string, def, min, max int64) (int64, bool) {
	v, present := f.m[name]
	if !present {
		return def, false
	}
	path := []any{name}
	n, ok := v.(json.Number)
	if !ok {
		f.add(typeIssue(path, "number", v, true))
		return def, false
	}
	x, err := n.Float64()
	if err != nil && !math.IsInf(x, 0) {
		f.add(typeIssue(path, "number", v, true))
		return def, false
	}
	switch {
	case x < float64(min):
		f.add(gatehouse.Issue{Code: "too_small", Minimum: ptr(float64(min)), Type: "number", Inclusive: ptr(true), Exact: ptr(false),
			Path: path, Message: fmt.Sprintf("Number must be greater than or equal to %d", min)})
	case x > float64(max):
		f.add(gatehouse.Issue{Code: "too_big", Maximum: ptr(float64(max)), Type: "number", Inclusive: ptr(true), Exact: ptr(false),
			Path: path, Message: fmt.Sprintf("Number must be less than or equal to %d", max)})
	case x != math.Trunc(x):
		f.add(gatehouse.Issue{Code: "invalid_type", Expected: "integer", Received: "float", Path: path, Message: "Expected integer, received float"})
	default:
		return int64(x), true
	}
	return def, false
}

// Bool reads a boolean field; absent, it is def.
func (f *fields) Bool(name string, def bool) (bool, bool) {
	v, present := f.m[name]
	if !present {
		return def, false
	}
	b, ok := v.(bool)
	if !ok {
		f.add(typeIssue([]any{name}, "boolean", v, true))
		return def, false
	}
	return b, true
}

// Objects reads an array of objects with at least minLen elements, calling
// each for every element.
func (f *fields) Objects(name string, minLen int, each func(path []any, obj map[string]any)) bool {
	v, present := f.m[name]
	if !present {
		return false
	}
	arr, ok := v.([]any)
	if !ok {
		f.add(typeIssue([]any{name}, "array", v, true))
		return false
	}
	if len(arr) < minLen {
		f.add(gatehouse.Issue{Code: "too_small", Minimum: ptr(float64(minLen)), Type: "array", Inclusive: ptr(true), Exact: ptr(false),
			Path: []any{name}, Message: fmt.Sprintf("Array must contain at least %d element(s)", minLen)})
		return false
	}
	before := len(f.issues)
	for k, el := range arr {
		path := []any{name, k}
		obj, ok := el.(map[string]any)
		if !ok {
			f.add(typeIssue(path, "object", el, true))
			continue
		}
		each(path, obj)
	}
	return len(f.issues) == before
}

// Refine adds a custom issue on the whole body when ok is false.
func (f *fields) Refine(ok bool, message string) {
	if !ok {
		f.add(gatehouse.Issue{Code: "custom", Path: []any{}, Message: message})
	}
}
