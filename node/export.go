package node

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"nroot/export"
	"nroot/internal/fsroot"
)

// ExportOptions fill in the server side.
type ExportOptions struct {
	Server  string // address nodes reach the server at: IPv4, IPv6 or a host name
	Path    string // absolute path nodes mount; default ROOT (the ganesha Pseudo path too)
	Ganesha bool
	Port    int // NFS port, when not 2049
}

// OptionError names the option that is wrong and what to give instead.
type OptionError struct {
	Option string // as the CLI spells it: --server, --port, --path
	Value  string
	Why    string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Option, e.Value, e.Why)
}

// hostLabel is one label of a host name (RFC 1123).
var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// Validate checks the options before anything is read.
func (o ExportOptions) Validate() error {
	switch {
	case o.Server == "":
		return &OptionError{"--server", "", "give the address nodes reach the NFS server at (e.g. --server=10.0.0.1)"}
	case o.Server == "ganesha":
		return &OptionError{"--server", o.Server, "takes the server's address; --ganesha prints an nfs-ganesha EXPORT block"}
	}
	if ip, err := netip.ParseAddr(strings.Trim(o.Server, "[]")); err == nil {
		if ip.Zone() != "" {
			return &OptionError{"--server", o.Server, "an address with a zone cannot be given to nodes; use a global address"}
		}
	} else {
		if _, port, err := net.SplitHostPort(o.Server); err == nil {
			return &OptionError{"--server", o.Server, fmt.Sprintf("give the address alone and the port as --port=%s", port)}
		}
		labels := strings.Split(strings.TrimSuffix(o.Server, "."), ".")
		for _, l := range labels {
			if !hostLabel.MatchString(l) {
				return &OptionError{"--server", o.Server, "is neither an IP address nor a host name"}
			}
		}
	}
	if o.Port < 0 || o.Port > 65535 {
		return &OptionError{"--port", fmt.Sprint(o.Port), "a port is 1 to 65535 (0: the standard 2049)"}
	}
	if o.Path != "" && (!strings.HasPrefix(o.Path, "/") || strings.ContainsAny(o.Path, " \t\n:")) {
		return &OptionError{"--path", o.Path, "the path nodes mount is absolute, without spaces or colons (e.g. --path=/srv/node)"}
	}
	return nil
}

// nfsHost is the server as root=nfs4:HOST:PATH spells it: IPv6 in
// brackets.
func nfsHost(s string) string {
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && ip.Is6() {
		return "[" + ip.String() + "]"
	}
	return s
}

// ExportConfig is what nroot export prints.
type ExportConfig struct {
	Root     string   `json:"root"`
	Server   string   `json:"server"`
	Path     string   `json:"path"`
	Exports  string   `json:"exports_line"`
	Ganesha  string   `json:"ganesha_export"`
	Cmdline  string   `json:"cmdline"`
	Kernel   string   `json:"kernel"`
	Initrd   string   `json:"initrd"`
	IPXE     string   `json:"ipxe"`
	GRUB     string   `json:"grub"`
	PXELinux string   `json:"pxelinux"`
	Kernels  []string `json:"kernels"`
}

// Export renders the server and boot configuration for an image.
func Export(root string, o ExportOptions) (*ExportConfig, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	img, err := fsroot.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w; give the directory of a node image", root, err)
	}
	defer img.Close()
	b, err := img.ReadFile(cmdlineFile, maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("export: %s has no %s; run nroot node %s first", root, cmdlineFile, root)
	}
	kvers, err := kernels(img)
	if err != nil {
		return nil, err
	}
	c := &ExportConfig{Root: abs, Server: o.Server, Path: o.Path, Kernels: kvers}
	if c.Path == "" {
		c.Path = abs
	}
	e := export.Export{Path: abs, Pseudo: c.Path}
	c.Exports = e.ExportsLine()
	c.Ganesha = export.GaneshaNFSV4() + e.Ganesha()
	opts := ""
	if o.Port != 0 && o.Port != 2049 {
		opts = fmt.Sprintf(":port=%d", o.Port)
	}
	host := nfsHost(c.Server)
	c.Cmdline = strings.NewReplacer("SERVER", host, "/PATH", c.Path).Replace(strings.TrimSpace(string(b)))
	if opts != "" {
		c.Cmdline = strings.Replace(c.Cmdline, host+":"+c.Path, host+":"+c.Path+opts, 1)
	}
	k := kvers[len(kvers)-1]
	c.Kernel, c.Initrd = "vmlinuz-"+k, "initrd.img-"+k
	c.IPXE = fmt.Sprintf("#!ipxe\nkernel %s initrd=%s %s\ninitrd %s\nboot\n", c.Kernel, c.Initrd, c.Cmdline, c.Initrd)
	c.GRUB = fmt.Sprintf("menuentry 'nroot node (%s)' {\n    linux /%s %s\n    initrd /%s\n}\n", k, c.Kernel, c.Cmdline, c.Initrd)
	c.PXELinux = fmt.Sprintf("LABEL nroot\n    KERNEL %s\n    INITRD %s\n    APPEND %s\n", c.Kernel, c.Initrd, c.Cmdline)
	return c, nil
}
