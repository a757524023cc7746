// Package pxe writes what a cluster's nodes boot from over the network:
// an entry iPXE script, one script per node named by its MAC, the
// nodes' identity segments, a dnsmasq configuration (DHCP reservations
// and chainloading into iPXE) and an nginx server block that serves
// only what booting needs. nroot writes configuration for the standard
// tools; it does not become a DHCP or HTTP server.
//
// The scripts chain: DHCP hands iPXE BASE/boot.ipxe, which sets where
// things are and chains to BASE/nodes/MAC.ipxe, which names the node
// and chains to the generation it boots, BASE/published.ipxe (the image's
// published pointer) or a pinned generations/N/boot.ipxe.
package pxe

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"nroot/internal/usage"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"nroot/internal/atomicfile"
	"nroot/serve/export"
	"nroot/serve/identity"
	"nroot/serve/image"
	"nroot/serve/inventory"
)

// Options say where the cluster's servers are.
type Options struct {
	// Base is the HTTP URL the image directory is served at, as nodes
	// reach it: http://10.0.0.1 or http://10.0.0.1:8080. The image is at
	// the server's root (the nginx block nroot writes serves it so).
	Base string
	// Server is the NFS server's address as nodes reach it.
	Server string
	// Export is the path NFS exports the image directory at (NFSv4
	// pseudo path).
	Export string
	// NFSPort is the NFS server's port, when not 2049 (0).
	NFSPort int
	// ImageBase is the HTTP URL nodes booting root=http-* fetch the
	// generations' image files from: a caching tier running
	// nginx-cache.conf. Empty means Base.
	ImageBase string
	// DHCPRange is dnsmasq's dhcp-range; when empty and every node has
	// an address, the network of the first one, static.
	DHCPRange string
	// TFTPRoot holds iPXE's undionly.kpxe and ipxe.efi (Debian's ipxe).
	TFTPRoot string
	// Inventory is the inventory's file name, for messages.
	Inventory string
	// SegmentGroup is the group that may read the identity segments
	// (the HTTP server's worker's). Empty means DefaultSegmentGroup when
	// this host has it, else root alone; "root" keeps them root-only.
	SegmentGroup string
	// Groups are the inventory's groups, for the overlays' templates.
	Groups map[string]*inventory.Group
	// Overlays is the directory of overlays (DIR/NAME); "" for the
	// built-ins alone.
	Overlays string
	// SecretsToAnyAddress lets a node without address= have a secret:
	// nginx serves its segment to any address.
	SecretsToAnyAddress bool
	// AccessLog is the file nginx logs requests to, which nroot status
	// reads (DefaultAccessLog when empty).
	AccessLog string
}

// DefaultSegmentGroup is the group Debian's and Ubuntu's nginx workers
// run as: a stock nginx reads the segments (0640) through it.
const DefaultSegmentGroup = "www-data"

// BootFirmware are the iPXE builds dnsmasq hands firmware by TFTP:
// BIOS's and UEFI's, both from Debian's ipxe package.
var BootFirmware = []string{"undionly.kpxe", "ipxe.efi"}

// DefaultAccessLog is where nroot's nginx block logs by default.
const DefaultAccessLog = "/var/log/nginx/nroot-access.log"

// ErrPinned: a node is pinned to a generation the image does not have.
var ErrPinned = errors.New("pinned generation missing")

// Files is what Render makes: contents by path relative to the image.
type Files map[string]string

// Result is what Write wrote.
type Result struct {
	Image   string `json:"image"`
	Entry   string `json:"entry"`
	DNSMasq string `json:"dnsmasq"`
	Nginx   string `json:"nginx"`
	Cache   string `json:"nginx_cache"`
	// Exports and Ganesha export IMAGE/generations alone, never the
	// image directory, whose nodes/ holds every node's private keys.
	Exports string   `json:"exports"`
	Ganesha string   `json:"ganesha"`
	Removed []string `json:"removed"` // stale scripts and segments of nodes gone from the inventory
	// SegmentGroup is the group the segments are readable by (0640), ""
	// when only root reads them (0600).
	SegmentGroup string `json:"segment_group"`
	// MissingFirmware names the iPXE builds --tftp-root lacks.
	MissingFirmware []string           `json:"missing_firmware"`
	Nodes           []Node             `json:"nodes"`
	Segments        []identity.Segment `json:"-"`
	// AccessLog is nginx's log of the nodes' requests (nroot status).
	AccessLog string `json:"access_log"`
	// CertAuthority is the known_hosts line that trusts every node's
	// host certificate (overlay ssh-host-cert), when a node has one.
	CertAuthority string `json:"cert_authority,omitempty"`
}

// Node is one node's boot configuration.
type Node struct {
	Name       string `json:"name"`
	MAC        string `json:"mac"`
	Address    string `json:"address"`
	Hostname   string `json:"hostname"`
	Generation string `json:"generation"` // "published" or the pinned number
	Root       string `json:"root"`       // its root mode (inventory.RootModes)
	Script     string `json:"script"`
	Segment    string `json:"segment"`
	// Files are the paths its overlays put on its root.
	Files []string `json:"overlay_files,omitempty"`
	line  int      // its inventory line, for messages
}

func (o Options) validate() (*url.URL, error) {
	u, err := url.Parse(o.Base)
	if err == nil && u.Scheme == "https" {
		return nil, &usage.Error{Option: "--http", Value: o.Base, Why: "the nginx block nroot writes serves plain HTTP, as Debian's iPXE builds fetch it: give http://ADDRESS[:PORT]"}
	}
	if err != nil || !serverRoot(u) {
		return nil, &usage.Error{Option: "--http", Value: o.Base, Why: "give the URL of the HTTP server that serves the image directory at its root, as nodes reach it: http://ADDRESS[:PORT]"}
	}
	if !servableHost(strings.TrimSuffix(strings.TrimPrefix(o.Server, "["), "]")) {
		// It goes into iPXE scripts as it is: || or ; would run commands.
		return nil, &usage.Error{Option: "--server", Value: o.Server, Why: "give the NFS server's address or host name as nodes reach it"}
	}
	if !strings.HasPrefix(o.Export, "/") || !export.Servable(o.Export) {
		return nil, &usage.Error{Option: "--export", Value: o.Export, Why: "give the absolute path NFS exports the image directory at, of letters, digits and / . _ - + only"}
	}
	if o.NFSPort < 0 || o.NFSPort > 65535 {
		return nil, &usage.Error{Option: "--nfs-port", Value: strconv.Itoa(o.NFSPort), Why: "a port is 1 to 65535 (0: the standard 2049)"}
	}
	if o.ImageBase != "" {
		if iu, err := url.Parse(o.ImageBase); err != nil || !serverRoot(iu) {
			return nil, &usage.Error{Option: "--image-http", Value: o.ImageBase, Why: "give the URL of the caching tier (nginx-cache.conf) that serves the generations at its root, as nodes reach it: http://ADDRESS[:PORT]"}
		}
	}
	if o.DHCPRange != "" {
		if _, err := ParseDHCPRange(o.DHCPRange); err != nil {
			return nil, &usage.Error{Option: "--dhcp-range", Value: o.DHCPRange, Why: err.Error()}
		}
	}
	return u, nil
}

// nfsOptions sets nroot-nfs-opts, which the generations' scripts put
// after each NFS path, for a server on another port than 2049.
func nfsOptions(port int) string {
	if opts := export.NFSOptions(port); opts != "" {
		return "set nroot-nfs-opts " + opts + "\n"
	}
	return ""
}

// serverRoot says whether u is a plain HTTP server's root, as iPXE
// scripts and nginx's server_name take it: http://HOST[:PORT][/].
func serverRoot(u *url.URL) bool {
	return u.Scheme == "http" && u.Hostname() != "" && (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.User == nil && u.Fragment == "" && servableHost(u.Hostname())
}

// servableHost is a host name or address nginx's server_name and an
// iPXE script take as they are.
func servableHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return hostName.MatchString(h)
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$`)

// inNetwork refuses a node whose address is not in the NFS server's
// network (by the node's prefix length): dnsmasq would hand it an address
// from which it could not reach the server. A server given by name is
// not checked.
func inNetwork(n inventory.Node, o Options) error {
	srv, err := netip.ParseAddr(o.Server)
	if err != nil || n.Address == "dhcp" {
		return nil
	}
	p, err := netip.ParsePrefix(n.Address)
	if err != nil {
		return nil
	}
	if srv, a := srv.Unmap(), p.Addr().Unmap(); srv.Is4() != a.Is4() {
		return nil // a node of both families reaches the server by the other
	}
	if !p.Masked().Contains(srv) && !(p.Addr().Is4In6() && netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked().Contains(srv.Unmap())) {
		return &usage.Error{Option: fmt.Sprintf("%s:%d address", o.Inventory, n.Line), Value: n.Address,
			Why: fmt.Sprintf("node %s is outside the network of the server %s (--server): give it an address in %s's network, or the server address nodes reach", n.Name, o.Server, o.Server)}
	}
	return nil
}

// UniqueIDArg is the kernel argument that makes a node's NFSv4 client
// owner its own from the first mount: nfs.nfs4_unique_id from its MAC,
// unique on any network, and the same at every boot.
func UniqueIDArg(mac string) string {
	return "nfs.nfs4_unique_id=nroot-" + strings.ReplaceAll(strings.ToLower(mac), ":", "-")
}

// BootIFArg names the interface the node boots from, as PXELINUX does,
// so that dracut brings up that one for the root and leaves a node's
// other NICs to the network overlay (which in turn never touches the
// boot interface). Empty when the inventory's args name one already.
func BootIFArg(mac, args string) string {
	for _, a := range strings.Fields(args) {
		if strings.HasPrefix(a, "BOOTIF=") {
			return ""
		}
	}
	return "BOOTIF=01-" + strings.ReplaceAll(strings.ToLower(mac), ":", "-")
}

// safeArgs refuses what iPXE would expand or split: extra kernel
// arguments are copied into a script.
func safeArgs(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(" ._,:=/+@%-", c)) {
			return false
		}
	}
	return true
}

// Render makes the scripts and configuration for nodes, without touching
// the disk.
func Render(nodes []inventory.Node, o Options) (Files, []Node, error) {
	u, err := o.validate()
	if err != nil {
		return nil, nil, err
	}
	base := strings.TrimSuffix(u.String(), "/")
	imageBase := base
	if o.ImageBase != "" {
		imageBase = strings.TrimSuffix(o.ImageBase, "/")
	}
	f := Files{}
	f["boot.ipxe"] = fmt.Sprintf(`#!ipxe
# nroot: the entry script DHCP gives iPXE. It says where the image is and
# chains to the script of the node with this MAC. Nodes booting
# root=http-* fetch the image file from nroot-image-base.
set nroot-base %s
set nroot-image-base %s
set nroot-server %s
set nroot-export %s
%schain ${nroot-base}/nodes/${mac:hexhyp}.ipxe || goto unknown
:unknown
echo nroot: booting ${nroot-base}/nodes/${mac:hexhyp}.ipxe failed: a MAC not in the inventory has no script (add it and run nroot pxe again); otherwise the messages above say why
sleep 60
reboot
`, base, imageBase, export.NFSHost(o.Server), strings.TrimSuffix(o.Export, "/"), nfsOptions(o.NFSPort))
	var out []Node
	for _, n := range nodes {
		if !safeArgs(n.Args) {
			return nil, nil, &inventory.Error{File: o.Inventory, Line: n.Line, Field: "args", Err: fmt.Errorf("%w: %q: only letters, digits, spaces and ._,:=/+@%%- are taken into an iPXE script", inventory.ErrSyntax, n.Args)}
		}
		if err := inNetwork(n, o); err != nil {
			return nil, nil, err
		}
		gen, chain := "published", image.Pointer
		if n.Gen != "" {
			id, err := strconv.Atoi(n.Gen)
			if err != nil || id <= 0 {
				return nil, nil, &inventory.Error{File: o.Inventory, Line: n.Line, Field: "generation", Err: fmt.Errorf("%w: %q is not a generation number", inventory.ErrSyntax, n.Gen)}
			}
			// The path as the image names it: "01" is generation 1.
			gen = strconv.Itoa(id)
			chain = "generations/" + gen + "/boot.ipxe"
		}
		script := "nodes/" + strings.ReplaceAll(n.MAC, ":", "-") + ".ipxe"
		// The NFSv4 client owner is made at the root's mount, before the
		// node has its hostname: without a uniquifier every node booting
		// at once presents the same one and expires the others' state.
		args := strings.Join(strings.Fields(UniqueIDArg(n.MAC)+" "+BootIFArg(n.MAC, n.Args)+" "+n.Args), " ")
		root := n.Root
		if root == "" {
			root = inventory.RootTree
		}
		if !slices.Contains(inventory.RootModes, root) {
			return nil, nil, &inventory.Error{File: o.Inventory, Line: n.Line, Field: "root", Err: fmt.Errorf("%w: %q: give one of %s", inventory.ErrSyntax, n.Root, strings.Join(inventory.RootModes, ", "))}
		}
		f[script] = fmt.Sprintf("#!ipxe\n# nroot: node %s (inventory line %d), generation %s\nset nroot-node %s\nset nroot-root %s\nset nroot-args %s\nchain ${nroot-base}/%s\n",
			n.Name, n.Line, gen, n.Name, root, args, chain)
		out = append(out, Node{Name: n.Name, MAC: n.MAC, Address: n.Address, Hostname: n.Hostname, Generation: gen, Root: root, Script: script, Segment: "nodes/" + n.Name + ".img", line: n.Line})
	}
	dm, err := dnsmasq(nodes, o, base)
	if err != nil {
		return nil, nil, err
	}
	f["dnsmasq.conf"] = dm
	f["nginx.conf"] = nginx(nodes, u)
	f["nginx-cache.conf"] = nginxCache(base)
	return f, out, nil
}

func dnsmasq(nodes []inventory.Node, o Options, base string) (string, error) {
	rng := o.DHCPRange
	if rng == "" {
		for _, n := range nodes {
			if n.Address == "dhcp" {
				return "", &usage.Error{Option: "--dhcp-range", Value: "", Why: fmt.Sprintf("node %s takes its address by DHCP: give the range to lend from (dnsmasq's dhcp-range, e.g. 10.0.0.100,10.0.0.200,12h)", n.Name)}
			}
		}
		if len(nodes) > 0 {
			p, err := netip.ParsePrefix(nodes[0].Address)
			if err != nil {
				return "", &usage.Error{Option: "--dhcp-range", Value: "", Why: fmt.Sprintf("node %s's address %q has no prefix length; give --dhcp-range", nodes[0].Name, nodes[0].Address)}
			}
			rng = p.Masked().Addr().String() + ",static"
		}
	}
	if strings.ContainsAny(rng, " \t\n") {
		return "", &usage.Error{Option: "--dhcp-range", Value: rng, Why: "no spaces; dnsmasq's dhcp-range value"}
	}
	tftp := o.TFTPRoot
	if tftp == "" {
		tftp = "/usr/lib/ipxe"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by nroot pxe: DHCP reservations for the inventory's nodes and\n# chainloading into iPXE. Include it from dnsmasq's configuration\n# (conf-file=) on the nodes' network. Only the nodes listed are booted.\n")
	if rng != "" {
		fmt.Fprintf(&b, "dhcp-range=%s\n", rng)
	}
	for _, n := range nodes {
		if n.Address == "dhcp" {
			fmt.Fprintf(&b, "dhcp-host=%s,set:nroot,%s\n", n.MAC, n.Hostname)
			continue
		}
		a := n.Address
		if p, err := netip.ParsePrefix(a); err == nil {
			a = p.Addr().Unmap().String() // ::ffff:10.0.0.2 is 10.0.0.2 to dnsmasq
			if p.Addr().Unmap().Is6() {
				// dnsmasq takes an IPv6 address in brackets only.
				a = "[" + a + "]"
			}
		}
		fmt.Fprintf(&b, "dhcp-host=%s,set:nroot,%s,%s\n", n.MAC, a, n.Hostname)
	}
	fmt.Fprintf(&b, `# iPXE announces itself with option 175; firmware gets iPXE first.
dhcp-match=set:ipxe,175
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-boot=tag:nroot,tag:!ipxe,tag:!efi64,undionly.kpxe
dhcp-boot=tag:nroot,tag:!ipxe,tag:efi64,ipxe.efi
dhcp-boot=tag:nroot,tag:ipxe,%s/boot.ipxe
enable-tftp
tftp-root=%s
`, base, tftp)
	return b.String(), nil
}

// nginx is a server block that serves only the files booting reads, and
// each node's segment only to the node's own address when it has one.
func nginx(nodes []inventory.Node, u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by nroot pxe: include it in nginx's http block. It serves the
# image directory at the server's root, but only the files booting
# reads; identity segments hold private keys. It answers requests for
# %[2]s, the host of the URL nodes are given (nroot pxe --http), so it
# stands beside another default server on the port, such as Debian's
# sites-enabled/default.
server {
    listen %[1]s;
    server_name %[2]s;
    root IMAGE;
    default_type application/octet-stream;
    location / { return 404; }
    location = /boot.ipxe { }
    location = /%[3]s { }
    # A generation's image file (nroot fsimage), for root=live:http://.
    location ~ "^/generations/[0-9]+/(vmlinuz|initrd\.img|boot\.ipxe|root\.squashfs|root\.erofs)$" { }
    location ~ "^/nodes/[0-9a-f-]+\.ipxe$" { }
`, port, serverName(u.Hostname()), image.Pointer)
	for _, n := range nodes {
		if n.Address == "dhcp" {
			fmt.Fprintf(&b, "    # %s takes its address by DHCP: its segment is served to any address.\n    location = /nodes/%s.img { }\n", n.Name, n.Name)
			continue
		}
		a := n.Address
		if p, err := netip.ParsePrefix(a); err == nil {
			a = p.Addr().Unmap().String() // nginx sees an IPv4 client as IPv4
		}
		fmt.Fprintf(&b, "    location = /nodes/%s.img { allow %s; deny all; }\n", n.Name, a)
	}
	b.WriteString("}\n")
	return b.String()
}

// serverName is host as nginx's server_name matches it: an IPv6
// address in brackets, as the Host header carries it.
func serverName(host string) string {
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		return "[" + host + "]"
	}
	return host
}

// CacheDir is where the caching tier keeps its files. nginx makes the
// directory itself (owned by its worker) but not its parent: Debian's
// nginx has no /var/cache/nginx, and /var/cache exists everywhere.
const CacheDir = "/var/cache/nginx-nroot"

// nginxCache is a server block for a caching tier in front of the origin
// (base): it serves a generation's files, which never change once made
// (numbers are never reused), from its cache, and fetches each from the
// origin once however many nodes ask at once (proxy_cache_lock: the
// others wait, up to the lock timeout, then are served from the cache;
// TestCacheTierFetchesOnce). Scripts and identity segments stay with
// the origin, which knows each node's address.
func nginxCache(base string) string {
	return fmt.Sprintf(`# Written by nroot pxe: a caching tier for the image's files, for the
# http block of nginx on a cache host. It fetches each generation's kernel,
# initramfs and image file from the origin %[1]s once per
# cache, however many nodes ask at once; scripts and identity segments are
# not served here (nodes get them from the origin). Nodes with root=http-*
# fetch their image file from it when nroot pxe is given --image-http
# http://CACHE. A miss is fetched whole (dracut's curl asks for the whole
# file, and nginx drops Range on a cached fetch), so no slice module.
# nginx makes %[2]s (its parent must exist). On a host with
# another default server on port 80 (Debian's sites-enabled/default), add
# this host's name as nodes reach it to server_name, or disable that site.
proxy_cache_path %[2]s levels=1:2 keys_zone=nroot:10m max_size=50g inactive=30d use_temp_path=off;
server {
    listen 80;
    location / { return 404; }
    location ~ "^/generations/[0-9]+/(vmlinuz|initrd\.img|root\.squashfs|root\.erofs)$" {
        proxy_pass %[1]s;
        proxy_cache nroot;
        # A generation's files never change once it is made.
        proxy_cache_valid 200 30d;
        # Concurrent misses wait for one fetch from the origin.
        proxy_cache_lock on;
        proxy_cache_lock_timeout 10m;
        proxy_cache_lock_age 10m;
        proxy_cache_use_stale updating error timeout;
        add_header X-Cache-Status $upstream_cache_status;
    }
}
`, base, CacheDir)
}

// Write renders the configuration for the image at dir, makes (once)
// each node's identity in store and writes its segment, and writes every
// file atomically. A node pinned to a generation the image lacks is
// refused.
func Write(dir string, nodes []inventory.Node, store identity.Store, o Options) (*Result, error) {
	im, err := image.Open(dir)
	if err != nil {
		return nil, err
	}
	files, out, err := Render(nodes, o)
	if err != nil {
		return nil, err
	}
	if err := checkRoots(im, out, o); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if !export.Servable(abs) {
		return nil, &usage.Error{Option: "IMAGE", Value: abs, Why: "the image's path goes into the exports, ganesha and nginx files it writes: letters, digits and / . _ - + only; move or link the image to such a path"}
	}
	accessLog := o.AccessLog
	if accessLog == "" {
		accessLog = DefaultAccessLog
	}
	if !filepath.IsAbs(accessLog) || !export.Servable(accessLog) {
		return nil, &usage.Error{Option: "--access-log", Value: accessLog, Why: "give an absolute path of letters, digits and / . _ - + only"}
	}
	files["nginx.conf"] = strings.Replace(files["nginx.conf"], "root IMAGE;", "root "+abs+";\n"+accessLogLines(accessLog), 1)
	if gens := export.Generations(abs, o.Export).Path; store.Dir != "" && under(store.Dir, gens) {
		return nil, &usage.Error{Option: "--state", Value: store.Dir, Why: "is under " + gens + ", which NFS exports to every node: keep the identities elsewhere"}
	}
	nodesDir := filepath.Join(dir, "nodes")
	if err := os.MkdirAll(nodesDir, 0o755); err != nil {
		return nil, err
	}
	ov, err := newOverlays(im, nodes, store, o)
	if err != nil {
		return nil, err
	}
	group, err := segmentGroup(o.SegmentGroup)
	if err != nil {
		return nil, err
	}
	gid, mode := 0, os.FileMode(0o600)
	if group != "" {
		if gid, err = lookupGroup(group); err != nil {
			return nil, err
		}
		mode = 0o640
	}
	// Each segment gets its group and mode before it replaces the old
	// one: a node failing further on leaves every segment servable.
	segs, err := store.WriteSegmentsAs(nodes, nodesDir, ov.extra, gid, mode)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Files = ov.files[out[i].Name]
	}
	ex := export.Generations(abs, o.Export)
	files["exports"] = "# Written by nroot pxe: for /etc/exports of the kernel's NFS server. Only\n# the generations are exported: nodes/ holds every node's private keys.\n" + exportsNote(abs, o.Export) + ex.ExportsLine() + "\n"
	files["ganesha.conf"] = "# Written by nroot pxe: for nfs-ganesha's configuration. Only the\n# generations are exported: nodes/ holds every node's private keys.\n" + export.GaneshaNFSV4() + ex.Ganesha()
	for rel, content := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, rel), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("pxe: %w", err)
		}
	}
	removed, err := removeStale(nodesDir, files, out)
	if err != nil {
		return nil, err
	}
	if err := writeIndex(abs, accessLog, out); err != nil {
		return nil, err
	}
	return &Result{AccessLog: accessLog, CertAuthority: ov.knownHosts, Image: abs, Entry: filepath.Join(abs, "boot.ipxe"), DNSMasq: filepath.Join(abs, "dnsmasq.conf"), Nginx: filepath.Join(abs, "nginx.conf"), Cache: filepath.Join(abs, "nginx-cache.conf"),
		Exports: filepath.Join(abs, "exports"), Ganesha: filepath.Join(abs, "ganesha.conf"), Removed: removed, Nodes: out, Segments: segs,
		SegmentGroup: group, MissingFirmware: missingFirmware(o.TFTPRoot)}, nil
}

// checkRoots refuses a node pinned to a generation the image lacks, and
// a node whose root mode its generation cannot boot: the pinned one, or
// for nodes that follow the pointer the published one, when one is.
func checkRoots(im image.Image, nodes []Node, o Options) error {
	pub, err := im.Published()
	if err != nil {
		return err
	}
	var published *image.Generation
	if pub != 0 {
		if published, err = im.Get(pub); err != nil {
			return fmt.Errorf("the published generation %d: %w", pub, err)
		}
	}
	for _, n := range nodes {
		g, which := published, fmt.Sprintf("follows the published generation %d", pub)
		if n.Generation != "published" {
			id, _ := strconv.Atoi(n.Generation)
			if g, err = im.Get(id); err != nil {
				return fmt.Errorf("node %s: %w: generation %d (nroot image list)", n.Name, ErrPinned, id)
			}
			which = fmt.Sprintf("is pinned to generation %d", id)
		}
		if g == nil || g.Boots(n.Root) {
			continue
		}
		return &usage.Error{Option: fmt.Sprintf("%s:%d root", o.Inventory, n.line), Value: n.Root,
			Why: fmt.Sprintf("node %s %s, which has no %s image and boots root=%s only; make one with nroot image update --fsimage %s, or give the node one of those", n.Name, which, n.Root, strings.Join(g.Modes(), ","), strings.TrimPrefix(strings.TrimPrefix(n.Root, "nfs-"), "http-"))}
	}
	return nil
}

// segmentGroup is the group the segments are made readable by: the one
// given, or DefaultSegmentGroup when this host has it; "" (root alone)
// for "root" or when the default is missing.
func segmentGroup(name string) (string, error) {
	switch name {
	case "root", "0":
		return "", nil
	case "":
		if _, err := lookupGroup(DefaultSegmentGroup); err != nil {
			return "", nil
		}
		return DefaultSegmentGroup, nil
	}
	if _, err := lookupGroup(name); err != nil {
		return "", &usage.Error{Option: "--segment-group", Value: name, Why: "no such group here: give the group the HTTP server's worker runs as (www-data on Debian), or root to keep the segments root-only"}
	}
	return name, nil
}

// missingFirmware names the iPXE builds dir lacks: dnsmasq would offer
// firmware a file its TFTP server cannot send.
func missingFirmware(dir string) []string {
	if dir == "" {
		dir = "/usr/lib/ipxe"
	}
	missing := []string{}
	for _, f := range BootFirmware {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || !fi.Mode().IsRegular() {
			missing = append(missing, f)
		}
	}
	return missing
}

// exportsNote says, when nodes mount a path other than the image's own,
// that the kernel's server needs the image's path as --export.
func exportsNote(dir, exportPath string) string {
	if strings.TrimSuffix(exportPath, "/") == dir {
		return ""
	}
	return fmt.Sprintf("# The kernel's server exports real paths: nodes mount %s/generations,\n# so run nroot pxe with --export %s to serve them this way (or use the\n# nfs-ganesha block, whose Pseudo path is theirs).\n", strings.TrimSuffix(exportPath, "/"), dir)
}

var macScript = regexp.MustCompile(`^[0-9a-f]{2}(-[0-9a-f]{2}){5}\.ipxe$`)

// removeStale deletes the scripts and segments nroot wrote for nodes that
// are no longer in the inventory (or changed their MAC): a node that left
// must not find its script, nor anyone its private keys. Only names
// nroot gives (MAC.ipxe, NAME.img) are touched.
func removeStale(nodesDir string, files Files, nodes []Node) ([]string, error) {
	keep := map[string]bool{}
	for _, n := range nodes {
		keep[n.Segment] = true
	}
	for rel := range files {
		keep[rel] = true
	}
	ents, err := os.ReadDir(nodesDir)
	if err != nil {
		return nil, err
	}
	removed := []string{}
	for _, e := range ents {
		rel := "nodes/" + e.Name()
		if keep[rel] || !e.Type().IsRegular() {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ".img")
		if !macScript.MatchString(e.Name()) && !(strings.HasSuffix(e.Name(), ".img") && labelName.MatchString(name)) {
			continue
		}
		if err := os.Remove(filepath.Join(nodesDir, e.Name())); err != nil {
			return nil, fmt.Errorf("pxe: removing %s of a node gone from the inventory: %w", rel, err)
		}
		removed = append(removed, rel)
	}
	return removed, nil
}

// labelName is a node's name as the inventory takes it.
var labelName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// under says whether p is dir or below it, symlinks resolved as far as
// they exist.
func under(p, dir string) bool {
	resolve := func(p string) string {
		p, _ = filepath.Abs(p)
		for q, rest := p, ""; ; {
			if r, err := filepath.EvalSymlinks(q); err == nil {
				return filepath.Join(r, rest)
			}
			parent := filepath.Dir(q)
			if parent == q {
				return p
			}
			rest, q = filepath.Join(filepath.Base(q), rest), parent
		}
	}
	rel, err := filepath.Rel(resolve(dir), resolve(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
