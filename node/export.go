package node

import (
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strings"

	"nroot/internal/fsroot"
)

// ExportOptions fill in the server side.
type ExportOptions struct {
	Server  string // address nodes reach the server at
	Path    string // path nodes mount; default ROOT (the ganesha pseudo path too)
	Ganesha bool
	Port    int // NFS port, when not 2049
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
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	img, err := fsroot.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("export: %w; give the directory of a node image", err)
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
	if c.Server == "" {
		c.Server = "SERVER"
	}
	if c.Path == "" {
		c.Path = abs
	}
	// Read-only with an overlay on each node; root must read root-only
	// files (/etc/shadow), so no root_squash.
	c.Exports = fmt.Sprintf("%s *(ro,no_subtree_check,no_root_squash,insecure,fsid=%d)", abs, crc32.ChecksumIEEE([]byte(abs))%65535+1)
	c.Ganesha = fmt.Sprintf(`# Owners as numbers, so nodes map them without the idmapper upcall.
NFSV4 {
    Only_Numeric_Owners = true;
    # nfs-ganesha 4's NFSv4.2 READ_PLUS gives Linux 6.12 clients EIO.
    Minor_Versions = 0, 1;
}
EXPORT {
    Export_Id = %d;
    Path = %s;
    Pseudo = %s;
    Access_Type = RO;
    Squash = No_Root_Squash;
    SecType = sys;
    Protocols = 3, 4;
    Transports = TCP;
    Delegations = None;
    FSAL { Name = VFS; }
}
`, crc32.ChecksumIEEE([]byte(abs))%65535+1, abs, c.Path)
	opts := ""
	if o.Port != 0 && o.Port != 2049 {
		opts = fmt.Sprintf(":port=%d", o.Port)
	}
	c.Cmdline = strings.NewReplacer("SERVER", c.Server, "/PATH", c.Path).Replace(strings.TrimSpace(string(b)))
	if opts != "" {
		c.Cmdline = strings.Replace(c.Cmdline, c.Server+":"+c.Path, c.Server+":"+c.Path+opts, 1)
	}
	k := kvers[len(kvers)-1]
	c.Kernel, c.Initrd = "vmlinuz-"+k, "initrd.img-"+k
	c.IPXE = fmt.Sprintf("#!ipxe\nkernel %s initrd=%s %s\ninitrd %s\nboot\n", c.Kernel, c.Initrd, c.Cmdline, c.Initrd)
	c.GRUB = fmt.Sprintf("menuentry 'nroot node (%s)' {\n    linux /%s %s\n    initrd /%s\n}\n", k, c.Kernel, c.Cmdline, c.Initrd)
	c.PXELinux = fmt.Sprintf("LABEL nroot\n    KERNEL %s\n    INITRD %s\n    APPEND %s\n", c.Kernel, c.Initrd, c.Cmdline)
	return c, nil
}
