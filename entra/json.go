package entra

import (
	"encoding/json"
	"strings"
)

// A single-pass reader of the flat JSON objects in a JWT's header and
// payload. It validates the whole document as encoding/json does (RFC 8259,
// nesting up to 10000) but, unlike encoding/json, matches names exactly and
// returns unescaped strings as substrings of the input, without copying.
// On the hot path it is several times faster than json.Unmarshal, which
// scans a document twice.

// Kinds of JSON value.
const (
	jsonString = iota + 1
	jsonNumber
	jsonNull
	jsonOther // true, false, object or array
)

const maxJSONDepth = 10000 // as encoding/json

// eachMember calls fn with the name and raw value of each member of the JSON
// object s, in order, and reports whether s is a valid JSON object and fn
// returned true for every member. A name is passed unescaped; a raw value is
// the exact text of the value.
func eachMember(s string, fn func(name, raw string, kind int) bool) bool {
	p := jsonParser{s: s}
	p.space()
	if !p.byte('{') {
		return false
	}
	p.space()
	if !p.byte('}') {
		for {
			p.space()
			start := p.i
			if p.value(1) != jsonString {
				return false
			}
			name, ok := jsonStringValue(s[start:p.i])
			p.space()
			if !ok || !p.byte(':') {
				return false
			}
			p.space()
			start = p.i
			kind := p.value(1)
			if kind == 0 || !fn(name, s[start:p.i], kind) {
				return false
			}
			p.space()
			if p.byte('}') {
				break
			}
			if !p.byte(',') {
				return false
			}
		}
	}
	p.space()
	return p.i == len(s)
}

// stringMember stores a string member's value in *dst; null leaves it
// unchanged, any other kind fails.
func stringMember(dst *string, raw string, kind int) bool {
	switch kind {
	case jsonNull:
		return true
	case jsonString:
		v, ok := jsonStringValue(raw)
		*dst = v
		return ok
	}
	return false
}

// jsonStringValue returns the value of the valid JSON string literal raw.
// Plain ASCII is returned as a substring; anything else goes through
// encoding/json, for identical handling of escapes and invalid UTF-8.
func jsonStringValue(raw string) (string, bool) {
	inner := raw[1 : len(raw)-1]
	for i := 0; i < len(inner); i++ {
		if c := inner[i]; c == '\\' || c >= 0x80 {
			var v string
			err := json.Unmarshal([]byte(raw), &v)
			return v, err == nil
		}
	}
	return inner, true
}

type jsonParser struct {
	s string
	i int
}

func (p *jsonParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (p *jsonParser) byte(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// value consumes one value and returns its kind, or 0 if it is invalid.
func (p *jsonParser) value(depth int) int {
	if p.i >= len(p.s) {
		return 0
	}
	switch c := p.s[p.i]; {
	case c == '"':
		return p.str()
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case c == '{' || c == '[':
		if depth >= maxJSONDepth || !p.container(depth) {
			return 0
		}
		return jsonOther
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return jsonNull
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return jsonOther
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return jsonOther
	}
	return 0
}

// container consumes an object or an array.
func (p *jsonParser) container(depth int) bool {
	end := byte(']')
	if p.s[p.i] == '{' {
		end = '}'
	}
	p.i++
	p.space()
	if p.byte(end) {
		return true
	}
	for {
		p.space()
		if end == '}' {
			if p.i >= len(p.s) || p.s[p.i] != '"' || p.str() == 0 {
				return false
			}
			p.space()
			if !p.byte(':') {
				return false
			}
			p.space()
		}
		if p.value(depth+1) == 0 {
			return false
		}
		p.space()
		if p.byte(end) {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// str consumes a string literal.
func (p *jsonParser) str() int {
	p.i++ // the opening quote
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return jsonString
		case c < 0x20:
			return 0
		case c == '\\':
			if p.i >= len(p.s) {
				return 0
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if p.i+4 > len(p.s) {
					return 0
				}
				for end := p.i + 4; p.i < end; p.i++ {
					if h := p.s[p.i]; !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return 0
					}
				}
			default:
				return 0
			}
		}
	}
	return 0
}

// number consumes a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonParser) number() int {
	p.byte('-')
	switch {
	case p.byte('0'):
	case p.digits() == 0:
		return 0
	}
	if p.byte('.') && p.digits() == 0 {
		return 0
	}
	if p.byte('e') || p.byte('E') {
		if !p.byte('+') {
			p.byte('-')
		}
		if p.digits() == 0 {
			return 0
		}
	}
	return jsonNumber
}

func (p *jsonParser) digits() int {
	start := p.i
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}
