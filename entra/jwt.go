package entra

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxTokenSize is the largest token, in bytes, that Verify reads; larger ones
// are "jwt malformed". Entra ID access tokens are 1–3 KiB, more with many
// group claims (above 200 groups Entra replaces them with an overage claim).
const MaxTokenSize = 16 << 10

// token is a compact JWS split into its parts, with the header and payload
// decoded but nothing verified.
type token struct {
	alg, kid     string
	claims       rawClaims
	signingInput string // base64url(header) "." base64url(payload)
	signature    string // base64url, still encoded
}

// rawClaims are the payload members Verify reads. Names match exactly; a
// null member counts as absent; a member of another JSON type than the one
// expected makes the token malformed.
type rawClaims struct {
	Aud, Iss, Tid, Oid, Sub, AppID, Azp, Idtyp, Ver, XmsMirid string
	Exp, Nbf, Iat                                             numericDate
}

// parseToken splits and decodes raw. It fails, with no more detail than the
// caller gets ("jwt malformed"), when raw is too large, is not three
// base64url parts, or its header or payload is not a JSON object of the
// expected shape. It runs in time linear in len(raw).
func parseToken(raw string) (*token, bool) {
	if len(raw) > MaxTokenSize {
		return nil, false
	}
	h, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, false
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return nil, false
	}
	// Decode both parts into one buffer, converted to one string: the claims
	// returned are substrings of it.
	enc := base64.RawURLEncoding
	buf := make([]byte, enc.DecodedLen(len(h))+enc.DecodedLen(len(p)))
	nh, err1 := enc.Decode(buf, []byte(h))
	np, err2 := enc.Decode(buf[nh:], []byte(p))
	if err1 != nil || err2 != nil {
		return nil, false
	}
	decoded := string(buf[:nh+np])
	header, payload := decoded[:nh], decoded[nh:]
	t := &token{signingInput: raw[:len(h)+1+len(p)], signature: sig}
	c := &t.claims
	ok = eachMember(header, func(name, raw string, kind int) bool {
		switch name {
		case "alg":
			return stringMember(&t.alg, raw, kind)
		case "kid":
			return stringMember(&t.kid, raw, kind)
		}
		return true
	}) && eachMember(payload, func(name, raw string, kind int) bool {
		switch name {
		case "aud":
			return stringMember(&c.Aud, raw, kind)
		case "iss":
			return stringMember(&c.Iss, raw, kind)
		case "tid":
			return stringMember(&c.Tid, raw, kind)
		case "oid":
			return stringMember(&c.Oid, raw, kind)
		case "sub":
			return stringMember(&c.Sub, raw, kind)
		case "appid":
			return stringMember(&c.AppID, raw, kind)
		case "azp":
			return stringMember(&c.Azp, raw, kind)
		case "idtyp":
			return stringMember(&c.Idtyp, raw, kind)
		case "ver":
			return stringMember(&c.Ver, raw, kind)
		case "xms_mirid":
			return stringMember(&c.XmsMirid, raw, kind)
		case "exp":
			return c.Exp.set(raw, kind)
		case "nbf":
			return c.Nbf.set(raw, kind)
		case "iat":
			return c.Iat.set(raw, kind)
		}
		return true
	})
	if !ok {
		return nil, false
	}
	return t, true
}

// numericDate is a JWT NumericDate claim: seconds since the epoch, possibly
// fractional.
type numericDate struct {
	seconds float64
	present bool
}

// set stores a number member's value; null leaves it absent, any other
// kind fails, as does a number out of float64's range.
func (d *numericDate) set(raw string, kind int) bool {
	switch kind {
	case jsonNull:
		return true
	case jsonNumber:
		f, err := strconv.ParseFloat(raw, 64)
		*d = numericDate{f, true}
		return err == nil
	}
	return false
}

// Time converts d to a time, clamping values beyond the range of
// time.Time's UnixNano to that range. An absent d is the zero time.
func (d numericDate) Time() time.Time {
	if !d.present {
		return time.Time{}
	}
	const limit = math.MaxInt64 / int64(time.Second) // keeps UnixNano meaningful
	switch sec := d.seconds; {
	case sec >= float64(limit):
		return time.Unix(limit, 0)
	case sec <= -float64(limit):
		return time.Unix(-limit, 0)
	default:
		whole, frac := math.Modf(sec)
		return time.Unix(int64(whole), int64(frac*1e9))
	}
}
