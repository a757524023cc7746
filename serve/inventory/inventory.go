// Package inventory reads the list of a cluster's nodes: one node, or a
// range of nodes written as a hostlist (node[001-128]), per line, with
// each node's MAC, address, hostname, pinned generation, root mode
// (root=tree, nfs-squashfs, http-squashfs, nfs-erofs or http-erofs) and
// extra kernel arguments. Bracket ranges in a value expand in step with the name's.
//
// A line whose name starts with @ defines a group (a profile): values
// its nodes take, in the order of their groups=, a node's own winning.
// Any other key=value is a variable, for the overlays' templates.
// overlays= adds to those of the node's groups.
//
//	# NAME        key=value ...
//	@compute      overlays=hosts,slurm slurm_role=compute args="quiet"
//	node01        mac=52:54:00:00:00:01
//	node[02-04]   mac=52:54:00:00:01:[02-04] address=10.0.0.[12-14]/24 groups=compute ens4.address=192.168.50.[12-14]/24
package inventory

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Limits that bound what a file can make nroot do.
const (
	MaxNodes    = 100000 // nodes in one inventory
	maxLine     = 4096
	maxHostname = 63
)

// Node is one node of the cluster.
type Node struct {
	Name     string `json:"name"`
	MAC      string `json:"mac"`            // lower case, colon-separated
	Address  string `json:"address"`        // "dhcp", or an address with its prefix length
	Hostname string `json:"hostname"`       // Name unless given
	Gen      string `json:"generation"`     // "" follows the published generation
	Args     string `json:"args,omitempty"` // extra kernel arguments
	// Root is how the node mounts its root: one of RootModes; "" is
	// RootTree, the generation's root/ over NFS.
	Root string `json:"root,omitempty"`
	Line int    `json:"line"` // where it was given
	// Groups are the node's groups, in the order given.
	Groups []string `json:"groups,omitempty"`
	// Overlays are its groups' overlays, then its own, each once.
	Overlays []string `json:"overlays,omitempty"`
	// Vars are its variables: its groups' in order, its own winning
	// (every key but the fields above).
	Vars map[string]string `json:"vars,omitempty"`
}

// Group is a profile: values for the nodes that name it in groups=.
type Group struct {
	Name     string            `json:"name"`
	Line     int               `json:"line"`
	Overlays []string          `json:"overlays,omitempty"`
	Vars     map[string]string `json:"vars,omitempty"` // generation=, args= and root= among them
	Nodes    []string          `json:"nodes"`          // names of its nodes, in inventory order
}

// Inventory is a whole inventory file.
type Inventory struct {
	File   string            `json:"file"`
	Nodes  []Node            `json:"nodes"`
	Groups map[string]*Group `json:"groups"`
	Order  []string          `json:"-"` // group names in the order defined
}

// Error is a line of an inventory that nroot cannot take.
type Error struct {
	File  string
	Line  int
	Field string // "" for the line as a whole
	Err   error
}

func (e *Error) Error() string {
	where := fmt.Sprintf("inventory %s:%d", e.File, e.Line)
	if e.Field != "" {
		where += ": " + e.Field
	}
	return where + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrSyntax is wrapped by every *Error.
var ErrSyntax = errors.New("bad inventory")

// ReadFile parses the inventory in file and returns its nodes.
func ReadFile(file string) ([]Node, error) {
	inv, err := Load(file)
	if err != nil {
		return nil, err
	}
	return inv.Nodes, nil
}

// Load parses the inventory in file, with its groups.
func Load(file string) (*Inventory, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > maxFile {
		return nil, &Error{File: file, Err: fmt.Errorf("%w: not a regular file of at most %d bytes", ErrSyntax, maxFile)}
	}
	return Parse(io.LimitReader(f, maxFile), file)
}

// maxFile bounds an inventory file: MaxNodes lines of a usual length.
const maxFile = 64 << 20

// Read parses an inventory and returns its nodes. name is the file's
// name, for errors.
func Read(r io.Reader, name string) ([]Node, error) {
	inv, err := Parse(r, name)
	if err != nil {
		return nil, err
	}
	return inv.Nodes, nil
}

// Parse parses an inventory with its groups. name is the file's name,
// for errors.
func Parse(r io.Reader, name string) (*Inventory, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, maxLine), maxLine)
	inv := &Inventory{File: name, Groups: map[string]*Group{}}
	var nodes []Node
	byName, byMAC, byHost := map[string]int{}, map[string]int{}, map[string]int{}
	byAddr := map[netip.Addr]int{}
	for n := 1; sc.Scan(); n++ {
		fail := func(field string, format string, a ...any) error {
			return &Error{File: name, Line: n, Field: field, Err: fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, a...))}
		}
		words, err := splitLine(sc.Text())
		if err != nil {
			return nil, fail("", "%v", err)
		}
		if len(words) == 0 {
			continue
		}
		if g, ok := strings.CutPrefix(words[0], "@"); ok {
			grp, err := parseGroup(g, words[1:], n, fail)
			if err != nil {
				return nil, err
			}
			if old, dup := inv.Groups[g]; dup {
				return nil, fail("name", "group %s is also defined on line %d", g, old.Line)
			}
			if len(inv.Groups) >= maxGroups {
				return nil, fail("name", "more than %d groups", maxGroups)
			}
			inv.Groups[g] = grp
			inv.Order = append(inv.Order, g)
			continue
		}
		names, err := Expand(words[0])
		if err != nil {
			return nil, fail("name", "%v", err)
		}
		if len(nodes)+len(names) > MaxNodes {
			return nil, fail("name", "more than %d nodes", MaxNodes)
		}
		fields := map[string][]string{}
		for _, w := range words[1:] {
			k, v, ok := strings.Cut(w, "=")
			if !ok || !keyRe.MatchString(k) {
				return nil, fail(k, "%q is not key=value with a key of letters, digits and _ . - (mac=, address=, hostname=, generation=, root=, args=, groups=, overlays= or a variable)", w)
			}
			if _, dup := fields[k]; dup {
				return nil, fail(k, "given twice")
			}
			vals := []string{v}
			if k != "args" && k != "groups" && k != "overlays" && strings.ContainsAny(v, "[]") {
				base := 10
				if k == "mac" {
					base = 16 // mac=52:54:00:00:01:[0a-1f]
				}
				if vals, err = expand(v, base); err != nil {
					return nil, fail(k, "%v", err)
				}
				if len(vals) != len(names) {
					return nil, fail(k, "%s gives %d values for %d nodes", v, len(vals), len(names))
				}
			}
			fields[k] = vals
		}
		if fields["mac"] == nil {
			return nil, fail("mac", "missing: every node needs mac=")
		}
		// The groups' values, in order; the node's own win below.
		var groups, overlays []string
		inherited := map[string]string{}
		if g := fields["groups"]; g != nil {
			if groups, err = nameList(g[0]); err != nil {
				return nil, fail("groups", "%v", err)
			}
			for _, gn := range groups {
				grp, ok := inv.Groups[gn]
				if !ok {
					return nil, fail("groups", "group %q is not defined above; define it on a line \"@%s key=value ...\"", gn, gn)
				}
				for k, v := range grp.Vars {
					inherited[k] = v
				}
				overlays = appendNew(overlays, grp.Overlays...)
			}
		}
		if o := fields["overlays"]; o != nil {
			own, err := nameList(o[0])
			if err != nil {
				return nil, fail("overlays", "%v", err)
			}
			overlays = appendNew(overlays, own...)
		}
		for i, nm := range names {
			get := func(k, def string) string {
				switch v := fields[k]; len(v) {
				case 0:
					if v, ok := inherited[k]; ok {
						return v
					}
					return def
				case 1:
					return v[0]
				default:
					return v[i]
				}
			}
			node := Node{Name: nm, Address: "dhcp", Hostname: get("hostname", nm), Gen: get("generation", ""), Args: get("args", ""), Root: get("root", ""), Line: n, Groups: groups, Overlays: overlays}
			for k, v := range inherited {
				if !knownKey[k] {
					node.setVar(k, v)
				}
			}
			for k := range fields {
				if !knownKey[k] {
					node.setVar(k, get(k, ""))
				}
			}
			if err := validHostname(nm); err != nil {
				return nil, fail("name", "%s: %v", nm, err)
			}
			mac, err := net.ParseMAC(get("mac", ""))
			if err != nil || len(mac) != 6 {
				return nil, fail("mac", "%q is not a MAC address like 52:54:00:12:34:56", get("mac", ""))
			}
			node.MAC = mac.String()
			if a := get("address", "dhcp"); a != "dhcp" {
				if node.Address, err = address(a); err != nil {
					return nil, fail("address", "%v", err)
				}
			}
			if err := validHostname(node.Hostname); err != nil {
				return nil, fail("hostname", "%s: %v", node.Hostname, err)
			}
			if node.Gen != "" && !genRe.MatchString(node.Gen) {
				return nil, fail("generation", "%q: give a generation's name (letters, digits, . _ -)", node.Gen)
			}
			if err := validRoot(node.Root); err != nil {
				return nil, fail("root", "%v", err)
			}
			if strings.ContainsAny(node.Args, "\"'\\$`;&|<>") {
				return nil, fail("args", "%q: kernel arguments may not hold quotes, backslashes or shell characters", node.Args)
			}
			if d, ok := node.Vars["domain"]; ok {
				if err := validDomain(d); err != nil {
					return nil, fail("domain", "%v", err)
				}
			}
			if j, dup := byName[nm]; dup {
				return nil, fail("name", "%s is also on line %d", nm, nodes[j].Line)
			}
			if j, dup := byMAC[node.MAC]; dup {
				return nil, fail("mac", "%s is also %s's, on line %d", node.MAC, nodes[j].Name, nodes[j].Line)
			}
			// One address or host name for two nodes would hand one
			// node's private keys to the other (nginx allows a segment
			// by address) and make dnsmasq refuse its file.
			if j, dup := byHost[node.Hostname]; dup {
				return nil, fail("hostname", "%s is also %s's, on line %d", node.Hostname, nodes[j].Name, nodes[j].Line)
			}
			var addr netip.Addr
			if node.Address != "dhcp" {
				addr = netip.MustParsePrefix(node.Address).Addr().Unmap()
				if j, dup := byAddr[addr]; dup {
					return nil, fail("address", "%s is also %s's, on line %d", addr, nodes[j].Name, nodes[j].Line)
				}
				byAddr[addr] = len(nodes)
			}
			byName[nm], byMAC[node.MAC], byHost[node.Hostname] = len(nodes), len(nodes), len(nodes)
			for _, g := range groups {
				inv.Groups[g].Nodes = append(inv.Groups[g].Nodes, nm)
			}
			nodes = append(nodes, node)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &Error{File: name, Line: len(nodes) + 1, Err: fmt.Errorf("%w: a line longer than %d bytes", ErrSyntax, maxLine)}
		}
		return nil, fmt.Errorf("inventory %s: %w", name, err)
	}
	if len(nodes) == 0 {
		return nil, &Error{File: name, Err: fmt.Errorf("%w: no nodes", ErrSyntax)}
	}
	for _, g := range inv.Groups {
		if g.Nodes == nil {
			g.Nodes = []string{}
		}
	}
	inv.Nodes = nodes
	return inv, nil
}

// maxGroups bounds the groups of one inventory.
const maxGroups = 1000

func (n *Node) setVar(k, v string) {
	if n.Vars == nil {
		n.Vars = map[string]string{}
	}
	n.Vars[k] = v
}

// parseGroup reads a group's line: its values are taken as written (no
// ranges), and what names one node (mac=, address=, hostname=) or nests
// groups is refused.
func parseGroup(name string, words []string, line int, fail func(string, string, ...any) error) (*Group, error) {
	if err := validHostname(name); err != nil {
		return nil, fail("name", "group @%s: %v", name, err)
	}
	g := &Group{Name: name, Line: line}
	seen := map[string]bool{}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || !keyRe.MatchString(k) {
			return nil, fail(k, "%q is not key=value with a key of letters, digits and _ . -", w)
		}
		if seen[k] {
			return nil, fail(k, "given twice")
		}
		seen[k] = true
		switch k {
		case "mac", "address", "hostname":
			return nil, fail(k, "names one node; give it on the node's line, not group @%s's", name)
		case "groups":
			return nil, fail(k, "groups do not nest; list every group on the node's line (groups=a,b)")
		case "overlays":
			o, err := nameList(v)
			if err != nil {
				return nil, fail(k, "%v", err)
			}
			g.Overlays = o
			continue
		case "generation":
			if !genRe.MatchString(v) {
				return nil, fail(k, "%q: give a generation's name (letters, digits, . _ -)", v)
			}
		case "args":
			if strings.ContainsAny(v, "\"'\\$`;&|<>") {
				return nil, fail(k, "%q: kernel arguments may not hold quotes, backslashes or shell characters", v)
			}
		case "domain":
			if err := validDomain(v); err != nil {
				return nil, fail(k, "%v", err)
			}
		case "root":
			if err := validRoot(v); err != nil {
				return nil, fail(k, "%v", err)
			}
		}
		if g.Vars == nil {
			g.Vars = map[string]string{}
		}
		g.Vars[k] = v
	}
	return g, nil
}

// nameList splits a comma-separated list of group or overlay names.
func nameList(s string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if err := validHostname(n); err != nil {
			return nil, fmt.Errorf("%q: %v", n, err)
		}
		out = appendNew(out, n)
	}
	return out, nil
}

func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// keyRe is a variable's name: ens4.address, slurm_role.
var keyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

var knownKey = map[string]bool{"mac": true, "address": true, "hostname": true, "generation": true, "args": true, "groups": true, "overlays": true, "root": true}

// RootTree is the root mode that mounts the generation's root/ over NFS.
const RootTree = "tree"

// RootModes are the values of root=: the tree, then each image file
// format (nroot image create --fsimage) loop-mounted over NFS or fetched
// over HTTP.
var RootModes = rootModes()

// imageFormats are build/fsimage's Formats by name, written out because
// the inventory is read on every system nroot runs on and fsimage builds
// on Linux alone; TestRootModesFollowFormats keeps the two the same.
var imageFormats = []string{"squashfs", "erofs"}

func rootModes() []string {
	modes := []string{RootTree}
	for _, f := range imageFormats {
		modes = append(modes, "nfs-"+f, "http-"+f)
	}
	return modes
}

func validRoot(v string) error {
	if v != "" && !slices.Contains(RootModes, v) {
		return fmt.Errorf("%q: give one of %s (tree, the default, mounts the generation's root/ over NFS)", v, strings.Join(RootModes, ", "))
	}
	return nil
}

var genRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// domainRe is a DNS name of two labels or more: domain= goes into
// certificate principals, the @cert-authority pattern and /etc/hosts.
var domainRe = regexp.MustCompile(`(?i)^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

func validDomain(d string) error {
	if len(d) > 253 || !domainRe.MatchString(d) {
		return fmt.Errorf("%q is not a DNS domain like cluster.example (labels of letters, digits and -, joined by dots)", d)
	}
	for _, l := range strings.Split(d, ".") {
		if len(l) > 63 {
			return fmt.Errorf("%q: a label is longer than 63 characters", d)
		}
	}
	return nil
}

var labelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// validHostname takes one DNS label of lower-case letters, digits and
// hyphens: the node's name is also a file name on the server.
func validHostname(s string) error {
	if len(s) == 0 || len(s) > maxHostname || !labelRe.MatchString(s) {
		return fmt.Errorf("give a host name of 1 to %d lower-case letters, digits and inner hyphens", maxHostname)
	}
	return nil
}

// address takes an IPv4 or IPv6 address, with or without a prefix
// length, and writes it with one (/24 for IPv4, /64 for IPv6, when none
// is given).
func address(s string) (string, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.String(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("%q is neither dhcp nor an address like 10.0.0.12/24", s)
	}
	bits := 24
	if a.Is6() {
		bits = 64
	}
	return netip.PrefixFrom(a, bits).String(), nil
}

// splitLine splits a line into words at blanks, outside double quotes,
// and drops a # comment.
func splitLine(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, c := range line {
		switch {
		case c == '"':
			quoted, inWord = !quoted, true
		case !quoted && c == '#':
			if inWord {
				words = append(words, w.String())
			}
			return words, nil
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New("a double quote is not closed")
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// Expand expands one hostlist: PREFIX[RANGES]SUFFIX, where RANGES are
// numbers and LOW-HIGH ranges separated by commas, zero-padded to the
// width of LOW when it starts with 0 (node[001-003]: node001, node002,
// node003). A word without brackets is itself. One bracket group per
// word.
func Expand(s string) ([]string, error) { return expand(s, 10) }

// expand is Expand with the numbers read and written in base 10 or 16.
func expand(s string, base int) ([]string, error) {
	open := strings.IndexByte(s, '[')
	if open < 0 {
		if strings.IndexByte(s, ']') >= 0 {
			return nil, fmt.Errorf("%q: ] without [", s)
		}
		return []string{s}, nil
	}
	end := strings.IndexByte(s[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("%q: [ without ]", s)
	}
	prefix, ranges, suffix := s[:open], s[open+1:open+end], s[open+end+1:]
	if strings.ContainsAny(suffix, "[]") || strings.ContainsAny(prefix, "]") {
		return nil, fmt.Errorf("%q: one [...] range per word", s)
	}
	var out []string
	for _, r := range strings.Split(ranges, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.ParseUint(lo, base, 32)
		b, err2 := strconv.ParseUint(hi, base, 32)
		if lo == "" || hi == "" || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q: %q is not a number or LOW-HIGH", s, r)
		}
		if b < a {
			return nil, fmt.Errorf("%q: %q runs backwards", s, r)
		}
		if uint64(len(out))+b-a+1 > MaxNodes {
			return nil, fmt.Errorf("%q: more than %d names", s, MaxNodes)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		verb := "%s%0*d%s"
		if base == 16 {
			verb = "%s%0*x%s"
		}
		for i := a; i <= b; i++ {
			out = append(out, fmt.Sprintf(verb, prefix, width, i, suffix))
		}
	}
	return out, nil
}
