package httpapi

import (
	gatehouse "github.com/gatehouse/gatehouse"
)

// policyFields are the token policy fields that the attach and update bodies
// of every auth method share. A nil field was absent.
type policyFields struct {
	TTL, MaxTTL, NumUsesLimit *int64
	TrustedIPs                *[]gatehouse.TrustedIP
}

// tokenPolicy reads the policy fields with Infisical's ranges. When attach
// is true, absent fields take their defaults and TTL must not exceed max
// TTL (even a max of 0, as Infisical's schema has it); on update the check
// applies when both are given and non-zero. Trusted IPs that are not an
// address or CIDR are a 400, reported by fields.err after the validation issues.
func (f *fields) tokenPolicy(attach bool) policyFields {
	var p policyFields
	read := func(name string, def, max int64) *int64 {
		v, ok := f.Int(name, def, 0, max)
		if !ok && !attach {
			return nil
		}
		return &v
	}
	p.TTL = read("accessTokenTTL", gatehouse.DefaultTokenTTL, gatehouse.MaxPolicyTTL)
	p.MaxTTL = read("accessTokenMaxTTL", gatehouse.DefaultTokenMaxTTL, gatehouse.MaxPolicyTTL)
	p.NumUsesLimit = read("accessTokenNumUsesLimit", 0, 1<<53-1)

	var raw []string
	if f.Objects("accessTokenTrustedIps", 1, func(path []any, obj map[string]any) {
		v, present := obj["ipAddress"]
		if ip, ok := f.stringAt(append(path, "ipAddress"), v, present, true, 0); ok {
			raw = append(raw, ip)
		}
	}) {
		ips := make([]gatehouse.TrustedIP, 0, len(raw))
		for _, s := range raw {
			ip, err := gatehouse.ParseTrustedIP(s)
			if err != nil {
				f.ipErr = err
				break
			}
			ips = append(ips, ip)
		}
		p.TrustedIPs = &ips
	} else if attach {
		ips := gatehouse.DefaultTrustedIPs()
		p.TrustedIPs = &ips
	}
	if p.TTL != nil && p.MaxTTL != nil && (attach || (*p.TTL > 0 && *p.MaxTTL > 0)) {
		f.Refine(*p.TTL <= *p.MaxTTL, "Access Token TTL cannot be greater than Access Token Max TTL.")
	}
	return p
}

func (p policyFields) policy() gatehouse.TokenPolicy {
	return gatehouse.TokenPolicy{TTL: *p.TTL, MaxTTL: *p.MaxTTL, NumUsesLimit: *p.NumUsesLimit, TrustedIPs: *p.TrustedIPs}
}
