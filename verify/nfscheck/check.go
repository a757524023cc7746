// Package nfscheck decides whether a diskless node can boot from an NFS
// export: it mounts the export through verify/nfsclient, walks it,
// compares it with the root filesystem or the lockfile it should serve
// (owners sent as names mapped through the export's own user database),
// and runs the boot checks (init, kernel modules, no fstab entry for /,
// machine-id and SSH host keys left to each node, root squash, the
// export's modes). It is nroot check.
package nfscheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"nroot/verify/nfsclient"
	"sort"
	"strings"
	"time"

	"github.com/willscott/go-nfs-client/nfs"

	"nroot/build/lockfile"
	"nroot/format/control"
	"nroot/format/report"
	"nroot/internal/fsroot"
)

// Options control Run.
type Options struct {
	Target   nfsclient.Target
	Rootfs   string         // compare the export with this directory
	Lock     *lockfile.Plan // or with this plan's packages
	Deep     bool
	Timeout  time.Duration
	Parallel int
	// MaxDepth and MaxEntries bound the walk (nfsclient.WalkOptions).
	MaxDepth   int
	MaxEntries int64
}

// Check is one boot-readiness check.
type Check = report.Check

// Report is what Run found.
type Report struct {
	Server      string              `json:"server"`
	Path        string              `json:"path"`
	NFSVersion  string              `json:"nfs_version"` // "3" or "4.1"
	MountPort   int                 `json:"mount_port"`
	NFSPort     int                 `json:"nfs_port"`
	Exports     []string            `json:"exports"`
	FSInfo      *nfs.FSInfo         `json:"fsinfo"`
	Stats       nfsclient.Stats     `json:"stats"`
	WalkSeconds float64             `json:"walk_seconds"`
	EntriesPerS float64             `json:"entries_per_second"`
	ReadMBps    float64             `json:"read_mb_per_second,omitempty"`
	Compared    string              `json:"compared_with,omitempty"`
	Missing     int                 `json:"missing"`
	Extra       int                 `json:"extra"`
	Changed     int                 `json:"changed"`
	Differences []report.Difference `json:"differences,omitempty"`
	Checks      []Check             `json:"checks"`
}

// Failed reports whether any check failed or the trees differ.
func (r *Report) Failed() bool {
	if r.Missing+r.Extra+r.Changed > 0 {
		return true
	}
	for _, c := range r.Checks {
		if !c.Passed() {
			return true
		}
	}
	return false
}

// Run mounts the export, walks it, compares it and checks it. An error
// is a *nfsclient.StepError when the server or the export cannot be reached.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	c, err := nfsclient.Mount(ctx, o.Target)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rep := &Report{Server: o.Target.Host, Path: o.Target.Path, NFSVersion: c.Version(), MountPort: c.Ports.Mount, NFSPort: c.Ports.NFS, Exports: c.Exports, FSInfo: c.Info}
	start := time.Now()
	remote, err := nfsclient.WalkRemote(ctx, c, nfsclient.WalkOptions{Parallel: o.Parallel, Deep: o.Deep, MaxDepth: o.MaxDepth, MaxEntries: o.MaxEntries}, &rep.Stats)
	if err != nil {
		return rep, asStep(err)
	}
	var owners *Check
	if c.NamedOwners() {
		ch := Check{Name: "owner-names", Status: report.Fail, Fix: "make the user database readable, or have the server send numbers (" + numericOwnersFix + ")"}
		if passwd, group, from, err := userDatabase(ctx, c, remote, o.Rootfs); err != nil {
			ch.Detail = "the server sent owners as names, and the user database to map them through cannot be read: " + err.Error()
		} else {
			ch = ownersCheck(c.MapOwners(remote, passwd, group), from)
		}
		owners = &ch
	}
	rep.WalkSeconds = time.Since(start).Seconds()
	if rep.WalkSeconds > 0 {
		rep.EntriesPerS = float64(rep.Stats.Entries) / rep.WalkSeconds
		if o.Deep {
			rep.ReadMBps = float64(rep.Stats.BytesRead) / 1e6 / rep.WalkSeconds
		}
	}
	switch {
	case o.Rootfs != "":
		rep.Compared = o.Rootfs
		local, err := nfsclient.WalkLocal(o.Rootfs, o.Deep)
		if err != nil {
			return rep, err
		}
		rep.Differences = nfsclient.Compare(local, remote)
	case o.Lock != nil:
		rep.Compared = "lockfile"
		diffs, err := comparePackages(ctx, c, remote, o.Lock)
		if err != nil {
			return rep, asStep(err)
		}
		rep.Differences = diffs
	}
	for _, d := range rep.Differences {
		switch d.Kind {
		case "missing":
			rep.Missing++
		case "extra":
			rep.Extra++
		default:
			rep.Changed++
		}
	}
	rep.Checks = bootChecks(ctx, c, remote)
	if owners != nil {
		rep.Checks = append(rep.Checks, *owners)
	}
	return rep, nil
}

// maxUserDB bounds /etc/passwd and /etc/group read from --rootfs, as
// readSmall bounds those of the export.
const maxUserDB = 1 << 20

// userDatabase is the /etc/passwd and /etc/group a node maps owner names
// through: the export's own, each file the export lacks taken from the
// --rootfs tree when there is one; from says where each came from. A
// file the export has but cannot be read is an error: the names would
// map to nothing on a node too.
func userDatabase(ctx context.Context, c *nfsclient.Conn, t nfsclient.Tree, rootfs string) (passwd, group []byte, from string, err error) {
	var local *fsroot.Root
	if rootfs != "" {
		if local, err = fsroot.Open(rootfs); err != nil {
			return nil, nil, "", fmt.Errorf("--rootfs %s: %w", rootfs, err)
		}
		defer local.Close()
	}
	var froms []string
	read := func(p string) ([]byte, error) {
		b, err := readSmall(ctx, c, t, p)
		switch {
		case err == nil:
			froms = append(froms, "the export's /"+p)
			return b, nil
		case !errors.Is(err, errNotFound):
			return nil, fmt.Errorf("the export's /%s: %w", p, err)
		case local == nil:
			froms = append(froms, "/"+p+" (the export has none)")
			return nil, nil
		}
		b, err = local.ReadFile(p, maxUserDB)
		switch {
		case err == nil:
			froms = append(froms, rootfs+"'s /"+p)
			return b, nil
		case errors.Is(err, fs.ErrNotExist):
			froms = append(froms, "/"+p+" (neither the export nor "+rootfs+" has one)")
			return nil, nil
		}
		return nil, fmt.Errorf("--rootfs /%s: %w", p, err)
	}
	if passwd, err = read("etc/passwd"); err != nil {
		return nil, nil, "", err
	}
	if group, err = read("etc/group"); err != nil {
		return nil, nil, "", err
	}
	return passwd, group, strings.Join(froms, " and "), nil
}

func asStep(err error) error {
	var se *nfsclient.StepError
	if errors.As(err, &se) {
		return err
	}
	var ne net.Error
	if errors.Is(err, nfsclient.ErrConnLost) || errors.Is(err, nfsclient.ErrNoAnswer) || errors.As(err, &ne) {
		return &nfsclient.StepError{Step: "nfs", Err: err, Hint: "the server stopped answering during the walk"}
	}
	return err
}

// resolve follows symlinks inside the export, merged-/usr included, as
// the node will see them; the library's Lookup does not follow them.
func resolve(t nfsclient.Tree, p string) (*nfsclient.Node, string) {
	real, ok := fsroot.ResolveLinks(p, func(q string) (string, bool) {
		if n := t[q]; n != nil && n.Type == "symlink" {
			return n.Linkname, true
		}
		return "", false
	})
	if !ok {
		return nil, real
	}
	return t[real], real
}

// readSmall reads a small file of the export.
func readSmall(ctx context.Context, c *nfsclient.Conn, t nfsclient.Tree, p string) ([]byte, error) {
	n, _ := resolve(t, p)
	if n == nil || n.Type != "file" {
		return nil, errNotFound
	}
	return c.ReadFile(ctx, n, 1<<20)
}

func bootChecks(ctx context.Context, c *nfsclient.Conn, t nfsclient.Tree) []Check {
	var out []Check
	add := func(name string, status report.Status, detail, fix string) {
		out = append(out, Check{Name: name, Status: status, Detail: detail, Fix: fix})
	}
	// /sbin/init
	if n, real := resolve(t, "sbin/init"); n == nil {
		add("init", "FAIL", "/sbin/init does not resolve inside the export", "install an init (systemd-sysv) in the image")
	} else if n.Type != "file" || n.Mode&0o111 == 0 {
		add("init", "FAIL", fmt.Sprintf("/sbin/init resolves to /%s, which is not an executable file", real), "reinstall the init package")
	} else {
		add("init", "PASS", "/sbin/init resolves to /"+real, "")
	}
	// kernels and modules
	var kernels []string
	for p, n := range t {
		if strings.HasPrefix(p, "boot/vmlinuz-") && n.Type == "file" {
			kernels = append(kernels, strings.TrimPrefix(p, "boot/vmlinuz-"))
		}
	}
	sort.Strings(kernels)
	if len(kernels) == 0 {
		add("kernel-modules", "FAIL", "no /boot/vmlinuz-* in the export", "run nroot node on the image")
	}
	for _, k := range kernels {
		if n, _ := resolve(t, "lib/modules/"+k); n != nil && n.Type == "dir" {
			add("kernel-modules", "PASS", fmt.Sprintf("/lib/modules/%s matches /boot/vmlinuz-%s", k, k), "")
		} else {
			add("kernel-modules", "FAIL", fmt.Sprintf("/boot/vmlinuz-%s has no /lib/modules/%s: the node cannot load drivers", k, k), "reinstall the kernel package in the image")
		}
	}
	// fstab
	if b, err := readSmall(ctx, c, t, "etc/fstab"); err == nil {
		root := ""
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] == "/" {
				root = line
			}
		}
		if root != "" {
			add("fstab-root", "FAIL", "/etc/fstab remounts the root: "+root, "remove the entry (nroot node does)")
		} else {
			add("fstab-root", "PASS", "/etc/fstab has no root entry", "")
		}
	} else if nfsclient.IsAccess(err) {
		add("fstab-root", "WARN", "/etc/fstab cannot be read", "")
	} else {
		add("fstab-root", "PASS", "no /etc/fstab", "")
	}
	// machine-id
	if b, err := readSmall(ctx, c, t, "etc/machine-id"); err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" || id == "uninitialized" {
			add("machine-id", "PASS", fmt.Sprintf("/etc/machine-id is %q: each node makes its own", id), "")
		} else {
			add("machine-id", "FAIL", "/etc/machine-id is fixed ("+id+"): every node would share it", "write \"uninitialized\" to it (nroot node does)")
		}
	} else {
		add("machine-id", "WARN", "no readable /etc/machine-id", "write \"uninitialized\" to /etc/machine-id")
	}
	// SSH host keys
	var keys []string
	for p := range t {
		if strings.HasPrefix(p, "etc/ssh/ssh_host_") && strings.HasSuffix(p, "_key") {
			keys = append(keys, "/"+p)
		}
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		add("ssh-host-keys", "FAIL", "host keys baked in: "+strings.Join(keys, " "), "remove them and generate them at boot (nroot node does)")
	} else {
		add("ssh-host-keys", "PASS", "no SSH host keys in the export", "")
	}
	// root_squash
	var squashed []string
	for _, p := range []string{"etc/shadow", "etc/gshadow"} {
		if n, _ := resolve(t, p); n != nil && n.Type == "file" {
			if _, err := readSmall(ctx, c, t, p); nfsclient.IsAccess(err) {
				squashed = append(squashed, "/"+p)
			}
		}
	}
	var denied []string
	for p, n := range t {
		if n.Err != "" {
			denied = append(denied, "/"+p)
		}
	}
	sort.Strings(denied)
	if len(squashed) > 0 || len(denied) > 0 {
		add("root-squash", "FAIL",
			fmt.Sprintf("the server maps root to an anonymous user: root-only files are unreadable (%s), so the node cannot read its own /etc/shadow (logins fail) nor enter root-only directories", strings.Join(firstN(append(squashed, denied...), 6), ", ")),
			"export with no_root_squash (/etc/exports) or Squash = No_Root_Squash (nfs-ganesha)")
	} else {
		add("root-squash", "PASS", "root can read root-only files (no root_squash)", "")
	}
	// read-only or writable, as the image's boot expects
	granted, err := c.Access(ctx, c.Root, nfs.ACCESS3_MODIFY|nfs.ACCESS3_EXTEND|nfs.ACCESS3_DELETE)
	writable := err == nil && granted&(nfs.ACCESS3_MODIFY|nfs.ACCESS3_EXTEND) != 0
	cmdline, _ := readSmall(ctx, c, t, "boot/nroot-cmdline")
	overlay := bytes.Contains(cmdline, []byte("rootovl")) || bytes.Contains(cmdline, []byte("rd.overlay")) || bytes.Contains(cmdline, []byte("overlayfs"))
	switch {
	case overlay && writable:
		add("export-mode", "WARN", "the image boots with an overlay over a read-only root, but the export is writable: one node could change what all boot", "export it read-only (ro; Access_Type = RO)")
	case !overlay && !writable && len(cmdline) > 0:
		add("export-mode", "FAIL", "the export is read-only and the image has no overlay: units that write to / will fail", "boot with an overlay (nroot node) or export read-write")
	default:
		add("export-mode", "PASS", fmt.Sprintf("export writable=%v, image overlay=%v", writable, overlay), "")
	}
	return out
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// maxDpkgStatus bounds the dpkg status file read from an export.
const maxDpkgStatus = 256 << 20

// comparePackages compares the export's installed packages with a plan.
func comparePackages(ctx context.Context, c *nfsclient.Conn, t nfsclient.Tree, plan *lockfile.Plan) ([]nfsclient.Difference, error) {
	n, _ := resolve(t, "var/lib/dpkg/status")
	if n == nil {
		return []nfsclient.Difference{{Path: "/var/lib/dpkg/status", Kind: "missing"}}, nil
	}
	if n.Type != "file" {
		return nil, fmt.Errorf("the export's /var/lib/dpkg/status is a %s, not a file", n.Type)
	}
	data, err := c.ReadFile(ctx, n, maxDpkgStatus)
	if err != nil {
		return nil, fmt.Errorf("the export's dpkg status: %w", err)
	}
	paras, err := control.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("the export's dpkg status: %w", err)
	}
	have := map[string]string{}
	for _, p := range paras {
		if strings.HasSuffix(p.Get("Status"), " installed") {
			have[p.Get("Package")] = p.Get("Version")
		}
	}
	var out []nfsclient.Difference
	for _, p := range plan.Packages {
		v, ok := have[p.Name]
		switch {
		case !ok:
			out = append(out, nfsclient.Difference{Path: "package " + p.Name, Kind: "missing", Fields: p.Version})
		case v != p.Version:
			out = append(out, nfsclient.Difference{Path: "package " + p.Name, Kind: "changed", Fields: "version " + v + ", lock " + p.Version})
		}
	}
	return out, nil
}

// errNotFound is a path the boot checks look for that the export lacks.
var errNotFound = errors.New("not found")
