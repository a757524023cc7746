package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"nroot/internal/fsroot"
	"nroot/serve/inventory"
)

// builtins are the overlays nroot renders itself; a directory of the
// same name in the overlays directory takes a built-in's place.
var builtins = map[string]func(Data, Options) ([]File, error){
	"hosts":         hosts,
	"network":       network,
	"ssh-host-cert": sshHostCert,
}

// HostAddress is the address /etc/hosts gives a node: its fixed
// address, or else the first of its interfaces' static addresses (by
// interface name); "" when it has neither.
func HostAddress(h Host) string {
	if h.IP != "" {
		return h.IP
	}
	ifaces, _ := interfaces(h)
	for _, i := range ifaces {
		if len(i.addrs) > 0 {
			return i.addrs[0].Addr().String()
		}
	}
	return ""
}

// hosts writes the cluster's /etc/hosts: localhost and every node with
// an address (HostAddress), as HOSTNAME.DOMAIN HOSTNAME when the node
// has a domain variable.
func hosts(d Data, _ Options) ([]File, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by nroot (overlay hosts) for %s: the cluster's nodes.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n\n", d.Node.Name)
	for _, h := range d.Nodes {
		a := HostAddress(h)
		if a == "" {
			fmt.Fprintf(&b, "# %s: no address= nor static interface address\n", h.Hostname)
			continue
		}
		names := h.Hostname
		if dom := h.Vars["domain"]; dom != "" {
			names = h.Hostname + "." + dom + " " + h.Hostname
		}
		fmt.Fprintf(&b, "%s\t%s\n", a, names)
	}
	return []File{{Path: "etc/hosts", Mode: 0o644, Data: []byte(b.String()), Overlay: "hosts"}}, nil
}

// iface is one interface's static configuration from a node's variables
// IFACE.address, IFACE.mtu and IFACE.route.
type iface struct {
	name   string
	addrs  []netip.Prefix
	mtu    int
	routes []route
}

type route struct {
	dest string // a prefix or "default"
	via  string // "" on link
}

var ifaceRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)

// VarError is a node's variable that cannot be taken.
type VarError struct {
	Node, Var string
	Err       error
}

func (e *VarError) Error() string { return fmt.Sprintf("variable %s: %v", e.Var, e.Err) }
func (e *VarError) Unwrap() error { return e.Err }

// interfaces reads a node's interface variables, sorted by name.
func interfaces(h Host) ([]iface, error) {
	by := map[string]*iface{}
	for k, v := range h.Vars {
		dot := strings.LastIndexByte(k, '.')
		if dot < 0 {
			continue
		}
		name, what := k[:dot], k[dot+1:]
		if what != "address" && what != "mtu" && what != "route" {
			continue
		}
		bad := func(why string) error {
			return &VarError{Node: h.Name, Var: k, Err: fmt.Errorf("%w: %q: %s", ErrOverlay, v, why)}
		}
		if !ifaceRe.MatchString(name) || name == "lo" {
			return nil, bad("the interface name is 1 to 15 letters, digits and _ . - (not lo)")
		}
		i := by[name]
		if i == nil {
			i = &iface{name: name}
			by[name] = i
		}
		switch what {
		case "address":
			for _, a := range strings.Split(v, ",") {
				p, err := netip.ParsePrefix(strings.TrimSpace(a))
				if err != nil || p.Addr().Zone() != "" {
					return nil, bad("give addresses with their prefix length, comma-separated: 192.168.50.11/24,fd00::11/64")
				}
				i.addrs = append(i.addrs, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
			}
		case "mtu":
			m, err := strconv.Atoi(v)
			if err != nil || m < 68 || m > 65535 {
				return nil, bad("give an MTU from 68 to 65535")
			}
			i.mtu = m
		case "route":
			for _, r := range strings.Split(v, ",") {
				f := strings.Fields(r)
				var rt route
				switch {
				case len(f) == 1 || len(f) == 3 && f[1] == "via":
					rt.dest = f[0]
					if f[0] != "default" {
						p, err := netip.ParsePrefix(f[0])
						if err != nil {
							return nil, bad("a route is DEST or DEST via GATEWAY (DEST a prefix or default), comma-separated")
						}
						rt.dest = p.Masked().String()
					}
					if len(f) == 1 && f[0] == "default" {
						return nil, bad("a default route needs its gateway: default via GATEWAY")
					}
					if len(f) == 3 {
						g, err := netip.ParseAddr(f[2])
						if err != nil || g.Zone() != "" {
							return nil, bad("a route's gateway is an address")
						}
						rt.via = g.Unmap().String()
					}
				default:
					return nil, bad("a route is DEST or DEST via GATEWAY (DEST a prefix or default), comma-separated")
				}
				i.routes = append(i.routes, rt)
			}
		}
	}
	out := make([]iface, 0, len(by))
	for _, i := range by {
		out = append(out, *i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].name < out[b].name })
	return out, nil
}

// Network writers: where the image's own network configuration is read.
const (
	Networkd = "networkd"
	Ifupdown = "ifupdown"
	Script   = "script"
)

// DetectNetwork says how the image at root configures interfaces:
// systemd-networkd when it is enabled and not masked, ifupdown when
// ifup is installed, otherwise a oneshot unit running ip (nroot node
// masks systemd-networkd, which would reconfigure the root's interface).
func DetectNetwork(root *fsroot.Root) string {
	masked := false
	if t, err := root.Readlink("etc/systemd/system/systemd-networkd.service"); err == nil && t == "/dev/null" {
		masked = true
	}
	_, err := root.Lstat("etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
	switch {
	case !masked && err == nil:
		return Networkd
	case root.Exists("usr/sbin/ifup") || root.Exists("sbin/ifup"):
		return Ifupdown
	}
	return Script
}

// NetworkFiles are the paths, relative to the root, of nroot's network
// configuration of interface IFACE in each writer: the identity hook in
// the initramfs removes the boot interface's before copying.
var NetworkFiles = []string{"etc/systemd/network/10-nroot-IFACE.network", "etc/network/interfaces.d/nroot-IFACE", "etc/nroot/network.d/IFACE.sh"}

func networkFile(kind, name string) string {
	i := map[string]int{Networkd: 0, Ifupdown: 1, Script: 2}[kind]
	return strings.ReplaceAll(NetworkFiles[i], "IFACE", name)
}

// network writes the static configuration of a node's interfaces named
// in its variables (IFACE.address, IFACE.mtu, IFACE.route), in the
// image's writer (or the node's variable network=networkd|ifupdown|
// script). The interface the root came over is never configured: the
// identity hook drops its file at boot.
func network(d Data, o Options) ([]File, error) {
	ifaces, err := interfaces(d.Node)
	if err != nil {
		return nil, err
	}
	kind := o.Network
	if v, ok := d.Vars["network"]; ok {
		kind = v
	}
	if kind == "" {
		kind = Networkd
	}
	if kind != Networkd && kind != Ifupdown && kind != Script {
		return nil, &VarError{Node: d.Node.Name, Var: "network", Err: fmt.Errorf("%w: %q: give networkd, ifupdown or script", ErrOverlay, kind)}
	}
	var out []File
	for _, i := range ifaces {
		var b strings.Builder
		switch kind {
		case Networkd:
			fmt.Fprintf(&b, "# Written by nroot (overlay network) for %s.\n[Match]\nName=%s\n\n", d.Node.Name, i.name)
			if i.mtu != 0 {
				fmt.Fprintf(&b, "[Link]\nMTUBytes=%d\n\n", i.mtu)
			}
			b.WriteString("[Network]\nDHCP=no\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
			for _, a := range i.addrs {
				fmt.Fprintf(&b, "Address=%s\n", a)
			}
			for _, r := range i.routes {
				dest := r.dest
				if dest == "default" {
					dest = "0.0.0.0/0"
					if netip.MustParseAddr(r.via).Is6() {
						dest = "::/0"
					}
				}
				fmt.Fprintf(&b, "\n[Route]\nDestination=%s\n", dest)
				if r.via != "" {
					fmt.Fprintf(&b, "Gateway=%s\n", r.via)
				}
			}
		case Ifupdown:
			fmt.Fprintf(&b, "# Written by nroot (overlay network) for %s.\nauto %[2]s\niface %[2]s inet manual\n", d.Node.Name, i.name)
			if i.mtu != 0 {
				fmt.Fprintf(&b, "    mtu %d\n", i.mtu)
			}
			fmt.Fprintf(&b, "    up ip link set dev %s up\n", i.name)
			for _, a := range i.addrs {
				fmt.Fprintf(&b, "    up ip addr add %s dev %s\n", a, i.name)
			}
			for _, r := range i.routes {
				fmt.Fprintf(&b, "    up ip route add %s\n", routeArgs(r, i.name))
			}
			fmt.Fprintf(&b, "    down ip addr flush dev %s\n", i.name)
		case Script:
			fmt.Fprintf(&b, "#!/bin/sh\n# Written by nroot (overlay network) for %s: run by nroot-network.service.\nset -e\n", d.Node.Name)
			fmt.Fprintf(&b, "n=0\nwhile [ ! -e /sys/class/net/%[1]s ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done\n", i.name)
			if i.mtu != 0 {
				fmt.Fprintf(&b, "ip link set dev %s mtu %d\n", i.name, i.mtu)
			}
			fmt.Fprintf(&b, "ip link set dev %s up\n", i.name)
			for _, a := range i.addrs {
				fmt.Fprintf(&b, "ip addr replace %s dev %s\n", a, i.name)
			}
			for _, r := range i.routes {
				fmt.Fprintf(&b, "ip route replace %s\n", routeArgs(r, i.name))
			}
		}
		mode := 0o644
		if kind == Script {
			mode = 0o755
		}
		out = append(out, File{Path: networkFile(kind, i.name), Mode: fs.FileMode(mode), Data: []byte(b.String()), Overlay: "network"})
	}
	if kind == Script && len(out) > 0 {
		unit := `# Written by nroot (overlay network): the static addresses, MTU and
# routes of the interfaces the inventory names (not the boot interface).
[Unit]
Description=nroot: static configuration of the inventory's interfaces
DefaultDependencies=no
After=local-fs.target systemd-udevd.service
Before=network.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for f in /etc/nroot/network.d/*.sh; do [ -e "$f" ] || continue; /bin/sh "$f" || exit 1; done'

[Install]
WantedBy=multi-user.target
`
		out = append(out,
			File{Path: "etc/systemd/system/nroot-network.service", Mode: 0o644, Data: []byte(unit), Overlay: "network"},
			File{Path: "etc/systemd/system/multi-user.target.wants/nroot-network.service", Mode: fs.ModeSymlink | 0o777, Link: "/etc/systemd/system/nroot-network.service", Overlay: "network"})
	}
	return out, nil
}

func routeArgs(r route, dev string) string {
	s := r.dest
	if r.via != "" {
		s += " via " + r.via
	}
	return s + " dev " + dev
}

// ErrNoCA: ssh-host-cert needs the cluster's CA and the node's identity.
var ErrNoCA = errors.New("no cluster CA")

// sshHostCert writes each host key's certificate, signed by the cluster
// CA with the hostname (and HOSTNAME.DOMAIN with a domain variable) as
// principals, sshd's HostCertificate lines, and the CA's
// @cert-authority line for ssh between nodes.
func sshHostCert(d Data, o Options) ([]File, error) {
	if o.CA == nil || o.Identity == nil {
		return nil, fmt.Errorf("%w: ssh-host-cert is rendered by nroot pxe, which keeps the CA in its --state", ErrNoCA)
	}
	principals := []string{d.Node.Hostname}
	if dom := d.Vars["domain"]; dom != "" {
		principals = append(principals, d.Node.Hostname+"."+dom)
	}
	conf := "# Written by nroot (overlay ssh-host-cert): the host keys' certificates,\n# signed by the cluster's CA.\n"
	var out []File
	for _, k := range o.Identity.Keys {
		cert, err := o.CA.HostCert(o.Identity, k.Type, principals)
		if err != nil {
			return nil, err
		}
		p := "etc/ssh/ssh_host_" + k.Type + "_key-cert.pub"
		out = append(out, File{Path: p, Mode: 0o644, Data: []byte(cert), Overlay: "ssh-host-cert"})
		conf += "HostCertificate /" + p + "\n"
	}
	out = append(out,
		File{Path: "etc/ssh/sshd_config.d/nroot-host-cert.conf", Mode: 0o644, Data: []byte(conf), Overlay: "ssh-host-cert"},
		File{Path: "etc/ssh/ssh_known_hosts", Mode: 0o644, Data: []byte(o.CA.KnownHosts(d.inventoryNodes()) + "\n"), Overlay: "ssh-host-cert"})
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// inventoryNodes are d's nodes as much as KnownHosts reads of them.
func (d Data) inventoryNodes() []inventory.Node {
	var out []inventory.Node
	for _, h := range d.Nodes {
		out = append(out, inventory.Node{Name: h.Name, Hostname: h.Hostname, Overlays: h.Overlays, Vars: h.Vars})
	}
	return out
}

// NodeError names the inventory line and field of a node's overlay
// error when it is one of its variables.
func NodeError(inv *inventory.Inventory, n inventory.Node, err error) error {
	var ve *VarError
	if errors.As(err, &ve) {
		return &inventory.Error{File: inv.File, Line: n.Line, Field: ve.Var, Err: fmt.Errorf("%w: node %s: %v", inventory.ErrSyntax, n.Name, ve.Err)}
	}
	var ue *UnknownError
	if errors.As(err, &ue) {
		// The line that named it: the first of the node's groups that
		// lists it, or the node's own.
		line := n.Line
		for _, g := range n.Groups {
			if grp := inv.Groups[g]; grp != nil && slices.Contains(grp.Overlays, ue.Name) {
				line = grp.Line
				break
			}
		}
		return &inventory.Error{File: inv.File, Line: line, Field: "overlays", Err: fmt.Errorf("%w: node %s: overlay %s: %v", inventory.ErrSyntax, n.Name, ue.Name, ue.Err)}
	}
	return err
}
