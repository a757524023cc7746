package pxe

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DHCPRange is what nroot reads of a dnsmasq dhcp-range value: where it
// starts and, for a lending range, where it ends.
type DHCPRange struct {
	Start  netip.Addr
	End    netip.Addr // invalid for a static or constructor range
	Static bool
}

// dhcpModes are dnsmasq's dhcp-range mode keywords.
var dhcpModes = map[string]bool{"static": true, "proxy": true, "ra-only": true, "ra-names": true, "ra-stateless": true, "slaac": true, "ra-advrouter": true, "off-link": true}

// ParseDHCPRange reads a dnsmasq dhcp-range value as dnsmasq takes it:
// [tag:T,][set:T,]START[,END|MODE][,MODE][,NETMASK[,BROADCAST]|,PREFIX][,LEASE].
// It refuses what dnsmasq refuses (a START-END range, addresses of two
// families, a word out of place), so that nroot pxe names the flag before
// dnsmasq fails at its start. Start and End come out in order (dnsmasq
// swaps them too).
func ParseDHCPRange(s string) (DHCPRange, error) {
	var r DHCPRange
	if len(s) > 512 {
		return r, errors.New("longer than any dnsmasq dhcp-range")
	}
	if strings.ContainsAny(s, " \t\r\n#") {
		return r, errors.New("no spaces or #: one dnsmasq dhcp-range value, e.g. 10.0.0.100,10.0.0.200,12h")
	}
	fields := strings.Split(s, ",")
	i := 0
	for i < len(fields) && (strings.HasPrefix(fields[i], "tag:") || strings.HasPrefix(fields[i], "set:")) {
		i++
	}
	if i == len(fields) {
		return r, errors.New("no start address: dnsmasq's dhcp-range is START,END[,LEASE] (e.g. 10.0.0.100,10.0.0.200,12h) or NETWORK,static")
	}
	start, err := netip.ParseAddr(fields[i])
	if err != nil {
		if a, b, ok := strings.Cut(fields[i], "-"); ok {
			if _, e1 := netip.ParseAddr(a); e1 == nil {
				if _, e2 := netip.ParseAddr(b); e2 == nil {
					return r, fmt.Errorf("dnsmasq's dhcp-range separates start and end with a comma: give %s,%s", a, b)
				}
			}
		}
		return r, fmt.Errorf("%q is not an address: dnsmasq's dhcp-range is START,END[,LEASE] (e.g. 10.0.0.100,10.0.0.200,12h) or NETWORK,static", fields[i])
	}
	if start.Zone() != "" {
		return r, fmt.Errorf("%q: no zone in a dhcp-range address", fields[i])
	}
	r.Start = start
	rest := fields[i+1:]
	if len(rest) > 6 {
		return r, errors.New("more fields than dnsmasq's dhcp-range has")
	}
	if start.Is4() {
		// dnsmasq: START,END|static|proxy[,NETMASK[,BROADCAST]][,LEASE]
		if len(rest) == 0 {
			return r, fmt.Errorf("%s alone lends nothing: give START,END (e.g. %s,%s) or NETWORK,static", start, start, start.Next())
		}
		switch f := rest[0]; f {
		case "static":
			r.Static = true
		case "proxy":
		default:
			end, err := endAddr(start, f)
			if err != nil {
				return r, err
			}
			r.End = end
			if end.Less(start) {
				r.Start, r.End = end, start
			}
		}
		rest = rest[1:]
		for n := 0; n < 2 && len(rest) > 0 && strings.Contains(rest[0], "."); n++ {
			a, err := netip.ParseAddr(rest[0])
			if err != nil || !a.Is4() {
				break
			}
			rest = rest[1:]
		}
	} else {
		// dnsmasq: START[,END|MODE|constructor:IF]...[,PREFIX][,LEASE]
		for len(rest) > 0 {
			f := rest[0]
			if dhcpModes[f] {
				r.Static = r.Static || f == "static"
			} else if strings.HasPrefix(f, "constructor:") && len(f) > len("constructor:") {
			} else if end, err := endAddr(start, f); err == nil && !r.End.IsValid() {
				r.End = end
				if end.Less(start) {
					r.Start, r.End = end, start
				}
			} else {
				break
			}
			rest = rest[1:]
		}
		if len(rest) > 0 && rest[0] != "" && len(rest[0]) <= 3 && strings.Trim(rest[0], "0123456789") == "" {
			rest = rest[1:] // the prefix length
		}
	}
	if len(rest) > 0 {
		if !isLease(rest[0]) {
			if strings.Contains(rest[0], "-") {
				return r, fmt.Errorf("%q: dnsmasq's dhcp-range separates start and end with a comma (START,END)", rest[0])
			}
			return r, fmt.Errorf("%q is not a lease time (12h, 3600, infinite)", rest[0])
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return r, fmt.Errorf("%q after the lease time: dnsmasq's dhcp-range ends with it", rest[0])
	}
	return r, nil
}

// endAddr reads a range's end, of start's family. dnsmasq swaps an end
// before the start, so that is no error.
func endAddr(start netip.Addr, f string) (netip.Addr, error) {
	a, err := netip.ParseAddr(f)
	switch {
	case err != nil && strings.Contains(f, "-"):
		return a, fmt.Errorf("%q: dnsmasq's dhcp-range separates start and end with a comma (START,END)", f)
	case err != nil:
		return a, fmt.Errorf("%q is not the range's end address, static or proxy: dnsmasq's dhcp-range is START,END[,LEASE] or NETWORK,static", f)
	case a.Is4() != start.Is4() || a.Zone() != "":
		return a, fmt.Errorf("%s and %s: one dhcp-range takes addresses of one family", start, a)
	}
	return a, nil
}

// isLease is a lease time (or an IPv6 prefix length): a number of
// seconds with an optional unit, infinite or deprecated.
func isLease(f string) bool {
	if f == "infinite" || f == "deprecated" {
		return true
	}
	if f != "" && strings.ContainsRune("smhdw", rune(f[len(f)-1])) {
		f = f[:len(f)-1]
	}
	n, err := strconv.ParseUint(f, 10, 32)
	return err == nil && n < 1<<31
}
