package export

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"nroot/build/fsimage"
	"nroot/internal/fsroot"
	"nroot/internal/usage"
	"nroot/node"
)

// Options fill in the server side of Render.
type Options struct {
	Server  string // address nodes reach the server at: IPv4, IPv6 or a host name
	Path    string // absolute path nodes mount; default ROOT (the ganesha Pseudo path too)
	Ganesha bool
	Port    int // NFS port, when not 2049
	// Image is an image file of the root (nroot fsimage) on the server,
	// for the image modes' boot lines; ImagePath is the directory nodes
	// mount to reach it (default: the file's directory), HTTP the URL
	// it is served at.
	Image     string
	ImagePath string
	HTTP      string
}

// hostLabel is one label of a host name (RFC 1123).
var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// Validate checks the options before anything is read.
func (o Options) Validate() error {
	switch {
	case o.Server == "":
		return &usage.Error{Option: "--server", Value: "", Why: "give the address nodes reach the NFS server at (e.g. --server=10.0.0.1)"}
	case o.Server == "ganesha":
		return &usage.Error{Option: "--server", Value: o.Server, Why: "takes the server's address; --ganesha prints an nfs-ganesha EXPORT block"}
	}
	if ip, err := netip.ParseAddr(strings.Trim(o.Server, "[]")); err == nil {
		if ip.Zone() != "" {
			return &usage.Error{Option: "--server", Value: o.Server, Why: "an address with a zone cannot be given to nodes; use a global address"}
		}
	} else {
		if _, port, err := net.SplitHostPort(o.Server); err == nil {
			return &usage.Error{Option: "--server", Value: o.Server, Why: fmt.Sprintf("give the address alone and the port as --port=%s", port)}
		}
		labels := strings.Split(strings.TrimSuffix(o.Server, "."), ".")
		for _, l := range labels {
			if !hostLabel.MatchString(l) {
				return &usage.Error{Option: "--server", Value: o.Server, Why: "is neither an IP address nor a host name"}
			}
		}
	}
	if o.Port < 0 || o.Port > 65535 {
		return &usage.Error{Option: "--port", Value: fmt.Sprint(o.Port), Why: "a port is 1 to 65535 (0: the standard 2049)"}
	}
	if o.Path != "" && (!strings.HasPrefix(o.Path, "/") || !Servable(o.Path)) {
		return &usage.Error{Option: "--path", Value: o.Path, Why: "the path nodes mount is absolute, of letters, digits and / . _ - + only (e.g. --path=/srv/node)"}
	}
	if o.ImagePath != "" && (!strings.HasPrefix(o.ImagePath, "/") || !Servable(o.ImagePath)) {
		return &usage.Error{Option: "--image-path", Value: o.ImagePath, Why: "the directory nodes mount for the image file is absolute, of letters, digits and / . _ - + only"}
	}
	if (o.ImagePath != "" || o.HTTP != "") && o.Image == "" {
		return &usage.Error{Option: "--image", Value: "", Why: "give the image file (nroot fsimage wrote it) that --image-path or --http serves"}
	}
	if o.Image != "" && strings.ContainsAny(filepath.Base(o.Image), " \t\n:") {
		return &usage.Error{Option: "--image", Value: o.Image, Why: "the file's name goes on the kernel command line: no spaces or colons"}
	}
	if o.HTTP != "" {
		u, err := url.Parse(o.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(o.HTTP, " \t\n") {
			return &usage.Error{Option: "--http", Value: o.HTTP, Why: "give the image file's http:// or https:// URL (e.g. --http=http://10.0.0.1/root.squashfs)"}
		}
	}
	return nil
}

// NFSHost is the server as root=nfs4:HOST:PATH spells it: IPv6 in
// brackets.
func NFSHost(s string) string {
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && ip.Is6() {
		return "[" + ip.String() + "]"
	}
	return s
}

// NFSOptions are the options dracut's root=nfs4:HOST:PATH:OPTIONS takes
// for the NFS port: none for the standard 2049 (or 0).
func NFSOptions(port int) string {
	if port == 0 || port == 2049 {
		return ""
	}
	return fmt.Sprintf(":port=%d", port)
}

// Config is what nroot export prints: the export and the boot lines.
type Config struct {
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
	// ImageDir: Root is an nroot image directory; only its generations
	// are exported, and nodes boot from Path/N/root (nroot pxe).
	ImageDir bool `json:"image_directory"`
	// The image modes, with --image: the file and its format, the
	// ganesha block exporting its directory, and the boot lines.
	Image         *fsimage.Superblock `json:"image,omitempty"`
	ImageGanesha  string              `json:"image_ganesha_export,omitempty"`
	CmdlineNFSImg string              `json:"cmdline_nfs_image,omitempty"`
	CmdlineHTTP   string              `json:"cmdline_http_image,omitempty"`
}

// Render renders the server and boot configuration for a root the node
// stage built, or for an nroot image directory (its generations alone).
func Render(root string, o Options) (*Config, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if !Servable(abs) {
		return nil, &usage.Error{Option: "ROOT", Value: abs, Why: "an exported path is of letters, digits and / . _ - + only (exports lines, ganesha blocks and kernel command lines cannot carry others); move or link the root to such a path"}
	}
	img, err := fsroot.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w; give the directory of a node image", root, err)
	}
	defer img.Close()
	built, err := node.ReadBuilt(img)
	if fi, serr := os.Lstat(filepath.Join(abs, GenerationsDir)); errors.Is(err, node.ErrNotBuilt) && serr == nil && fi.IsDir() {
		// An nroot image directory: export its generations alone, never
		// the directory, whose nodes/ holds every node's private keys.
		path := o.Path
		if path == "" {
			path = abs
		}
		e := Generations(abs, path)
		return &Config{Root: abs, Server: o.Server, Path: e.Pseudo, Exports: e.ExportsLine(), Ganesha: GaneshaNFSV4() + e.Ganesha(), Kernels: []string{}, ImageDir: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	kvers := built.Kernels
	c := &Config{Root: abs, Server: o.Server, Path: o.Path, Kernels: kvers}
	if c.Path == "" {
		c.Path = abs
	}
	e := Export{Path: abs, Pseudo: c.Path}
	c.Exports = e.ExportsLine()
	c.Ganesha = GaneshaNFSV4() + e.Ganesha()
	opts := NFSOptions(o.Port)
	host := NFSHost(c.Server)
	c.Cmdline = strings.NewReplacer("SERVER", host, "/PATH", c.Path).Replace(built.Cmdline)
	if opts != "" {
		c.Cmdline = strings.Replace(c.Cmdline, host+":"+c.Path, host+":"+c.Path+opts, 1)
	}
	if o.Image != "" {
		if err := imageModes(img, built, c, o, host); err != nil {
			return nil, err
		}
	}
	k := kvers[len(kvers)-1]
	c.Kernel, c.Initrd = "vmlinuz-"+k, "initrd.img-"+k
	c.IPXE = fmt.Sprintf("#!ipxe\nkernel %s initrd=%s %s\ninitrd %s\nboot\n", c.Kernel, c.Initrd, c.Cmdline, c.Initrd)
	c.GRUB = fmt.Sprintf("menuentry 'nroot node (%s)' {\n    linux /%s %s\n    initrd /%s\n}\n", k, c.Kernel, c.Cmdline, c.Initrd)
	c.PXELinux = fmt.Sprintf("LABEL nroot\n    KERNEL %s\n    INITRD %s\n    APPEND %s\n", c.Kernel, c.Initrd, c.Cmdline)
	return c, nil
}

// imageModes fills in the boot lines that take the root from an image
// file: loop-mounted over NFS, or fetched over HTTP.
func imageModes(img *fsroot.Root, built *node.Built, c *Config, o Options, host string) error {
	if built.ImageCmdline == "" {
		return fmt.Errorf("export: %s has no %s; run nroot node %s again (this nroot's node boots image files)", c.Root, node.ImageCmdlineFile, c.Root)
	}
	if v := node.DracutVersion(img); v != "" && node.DracutMajor(v) < node.MinImageDracut {
		return &usage.Error{Option: "--image", Value: o.Image, Why: fmt.Sprintf("the image's dracut %s cannot boot from an image file (051 fails at switch-root); serve the tree, or use an image with dracut %d or later", v, node.MinImageDracut)}
	}
	abs, err := filepath.Abs(o.Image)
	if err != nil {
		return err
	}
	if !Servable(abs) {
		return &usage.Error{Option: "--image", Value: abs, Why: "an exported path is of letters, digits and / . _ - + only; move the file to such a path"}
	}
	f, err := os.Open(abs)
	if err != nil {
		return &usage.Error{Option: "--image", Value: o.Image, Why: fmt.Sprintf("%v; write it with nroot fsimage %s FILE.squashfs", err, c.Root)}
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return &usage.Error{Option: "--image", Value: o.Image, Why: "is not a regular file"}
	}
	sb, err := fsimage.ReadSuperblock(f)
	if err != nil {
		return &usage.Error{Option: "--image", Value: o.Image, Why: fmt.Sprintf("%v; write it with nroot fsimage", err)}
	}
	c.Image = sb
	dir := o.ImagePath
	if dir == "" {
		dir = filepath.Dir(abs)
	}
	e := Export{Path: filepath.Dir(abs), Pseudo: dir}
	c.ImageGanesha = e.Ganesha()
	line := built.ImageCmdline
	// dracut's own NFS syntax, which url-lib hands to nfs-lib as it is
	// (its nfs:// form would mount NFSv3).
	c.CmdlineNFSImg = strings.Replace(line, "IMAGEURL", "nfs4:"+host+":"+path.Join(dir, filepath.Base(abs))+NFSOptions(o.Port), 1)
	if o.HTTP != "" {
		c.CmdlineHTTP = strings.Replace(line, "IMAGEURL", o.HTTP, 1)
	}
	return nil
}
