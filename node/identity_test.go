package node

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// hookWrapper stands in for dracut around the identity hook: getarg,
// info, warn and die as dracut-lib.sh has them (die stops the boot), and
// an ip that finds no address, so only BOOTIF names the boot interface.
const hookWrapper = `getarg() { [ "$1" = BOOTIF= ] && printf '%s\n' "$TEST_BOOTIF"; return 0; }
info() { echo "info: $*"; }
warn() { echo "warn: $*"; }
die() { echo "die: $*"; exit 1; }
ip() { return 0; }
. "$1"
`

// hookTree is a test tree: a root, a segment and /sys/class/net under
// one directory, with "outside" beside them for what must stay untouched.
type hookTree struct {
	t                           *testing.T
	root, seg, net, outside, sh string
}

func newHookTree(t *testing.T) *hookTree {
	dir := t.TempDir()
	h := &hookTree{t: t, root: filepath.Join(dir, "root"), seg: filepath.Join(dir, "seg"), net: filepath.Join(dir, "net"), outside: filepath.Join(dir, "outside"), sh: filepath.Join(dir, "hook.sh")}
	for _, d := range []string{h.root, h.seg, h.net, h.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(h.sh, []byte(identityHook), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wrapper.sh"), []byte(hookWrapper), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// dir makes directory rel under base with mode (chmod, past the umask).
func (h *hookTree) dir(base, rel string, mode fs.FileMode) {
	p := filepath.Join(base, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		h.t.Fatal(err)
	}
}

// file writes rel under base, its parents 0755.
func (h *hookTree) file(base, rel, content string, mode fs.FileMode) {
	p := filepath.Join(base, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hookTree) symlink(target, base, rel string) {
	p := filepath.Join(base, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		h.t.Fatal(err)
	}
}

// iface makes /sys/class/net/NAME/address.
func (h *hookTree) iface(name, mac string) {
	h.file(h.net, name+"/address", mac+"\n", 0o444)
}

// run executes the hook with shell as dracut would source it at
// pre-pivot; it returns the output and whether it died.
func (h *hookTree) run(shell, bootif string) (string, bool) {
	cmd := exec.Command(shell, filepath.Join(filepath.Dir(h.sh), "wrapper.sh"), h.sh)
	cmd.Env = append(os.Environ(), "NEWROOT="+h.root, "nroot_identity_dir="+h.seg, "nroot_sys_net="+h.net, "TEST_BOOTIF="+bootif)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			h.t.Fatalf("running the hook: %v", err)
		}
		return string(out), true
	}
	return string(out), false
}

// mode is rel's permission bits (of the link itself for a symlink) and
// whether it exists.
func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return fi.Mode()
}

func content(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(b)
}

// empty fails when dir holds anything: the hook wrote outside NEWROOT.
func empty(t *testing.T, dir string) {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) > 0 {
		t.Errorf("%s has %v: the hook wrote outside NEWROOT", dir, names[0].Name())
	}
}

// TestIdentityHook runs the identity hook with /bin/sh (dash on Debian)
// and with bash (the initramfs's sh when dracut's bash module is in)
// against a root and a segment in temporary directories, as dracut runs
// it at pre-pivot.
func TestIdentityHook(t *testing.T) {
	var shells []string
	for _, sh := range []string{"/bin/sh", "bash"} {
		if p, err := exec.LookPath(sh); err == nil {
			shells = append(shells, p)
		}
	}
	if len(shells) == 0 {
		t.Skip("no /bin/sh")
	}
	asRoot := os.Geteuid() == 0
	tests := []struct {
		name   string
		setup  func(h *hookTree)
		bootif string
		died   bool
		warns  int // warn lines expected
		check  func(t *testing.T, h *hookTree)
	}{{
		name: "a new file in an existing directory leaves the directory's mode",
		setup: func(h *hookTree) {
			h.dir(h.root, "etc", 0o750)
			h.dir(h.seg, "etc", 0o755)
			h.file(h.seg, "etc/hostname", "node01\n", 0o644)
		},
		check: func(t *testing.T, h *hookTree) {
			if m := mode(t, filepath.Join(h.root, "etc")); m.Perm() != 0o750 || !m.IsDir() {
				t.Errorf("root's /etc is %v, want drwxr-x--- as it was", m)
			}
			if c := content(t, filepath.Join(h.root, "etc/hostname")); c != "node01\n" {
				t.Errorf("hostname %q", c)
			}
		},
	}, {
		name: "a missing parent is created with the segment directory's mode",
		setup: func(h *hookTree) {
			h.dir(h.root, "etc", 0o755)
			h.file(h.seg, "etc/munge/munge.key", "KEY", 0o600)
			h.dir(h.seg, "etc/munge", 0o700)
		},
		check: func(t *testing.T, h *hookTree) {
			if m := mode(t, filepath.Join(h.root, "etc/munge")); m.Perm() != 0o700 || !m.IsDir() {
				t.Errorf("/etc/munge is %v, want drwx------", m)
			}
			if m := mode(t, filepath.Join(h.root, "etc/munge/munge.key")); m.Perm() != 0o600 || !m.IsRegular() {
				t.Errorf("munge.key is %v, want -rw-------", m)
			}
		},
	}, {
		name: "a symlinked parent of a host key is refused, the boot stops and nothing is written outside",
		setup: func(h *hookTree) {
			h.dir(h.root, "etc", 0o755)
			h.symlink(h.outside, h.root, "etc/ssh")
			h.file(h.seg, "etc/ssh/ssh_host_ed25519_key", "PRIVATE", 0o600)
		},
		died: true,
		check: func(t *testing.T, h *hookTree) {
			empty(t, h.outside)
		},
	}, {
		name: "a symlinked parent of an overlay file is refused with a warning and the rest is placed",
		setup: func(h *hookTree) {
			h.dir(h.root, "etc", 0o755)
			h.symlink(h.outside, h.root, "etc/slurm")
			h.file(h.seg, "etc/slurm/slurm.conf", "ClusterName=x\n", 0o644)
			h.file(h.seg, "etc/hostname", "node01\n", 0o644)
		},
		warns: 2, // the file, and the count
		check: func(t *testing.T, h *hookTree) {
			empty(t, h.outside)
			if c := content(t, filepath.Join(h.root, "etc/hostname")); c != "node01\n" {
				t.Errorf("hostname %q", c)
			}
		},
	}, {
		name: "a relative symlink up out of the root as a parent is refused",
		setup: func(h *hookTree) {
			h.symlink("../outside", h.root, "etc")
			h.file(h.seg, "etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
		},
		died: true,
		check: func(t *testing.T, h *hookTree) {
			empty(t, h.outside)
		},
	}, {
		name: "a file of the root where the segment has a directory stops the boot for the identity",
		setup: func(h *hookTree) {
			h.file(h.root, "etc", "not a directory", 0o644)
			h.file(h.seg, "etc/hostname", "node01\n", 0o644)
		},
		died: true,
		check: func(t *testing.T, h *hookTree) {
			if c := content(t, filepath.Join(h.root, "etc")); c != "not a directory" {
				t.Errorf("root's /etc became %q", c)
			}
		},
	}, {
		name: "an existing file is replaced with the segment's mode and owner",
		setup: func(h *hookTree) {
			h.dir(h.root, "etc", 0o755)
			h.file(h.root, "etc/hosts", "old\n", 0o644)
			h.file(h.seg, "etc/hosts", "new\n", 0o640)
			if asRoot {
				if err := os.Lchown(filepath.Join(h.seg, "etc/hosts"), 1234, 4321); err != nil {
					t.Fatal(err)
				}
			}
		},
		check: func(t *testing.T, h *hookTree) {
			p := filepath.Join(h.root, "etc/hosts")
			if c := content(t, p); c != "new\n" {
				t.Errorf("hosts %q", c)
			}
			if m := mode(t, p); m.Perm() != 0o640 {
				t.Errorf("hosts mode %v, want -rw-r-----", m)
			}
			if fi, err := os.Lstat(p); err == nil && asRoot {
				st := fi.Sys().(*syscall.Stat_t)
				if st.Uid != 1234 || st.Gid != 4321 {
					t.Errorf("hosts owned by %d:%d, want 1234:4321", st.Uid, st.Gid)
				}
			}
			if _, err := os.Lstat(filepath.Join(h.root, "etc/.nroot-identity.tmp")); err == nil {
				t.Error("the temporary file was left behind")
			}
		},
	}, {
		name: "a symlink where the file goes is replaced, not followed",
		setup: func(h *hookTree) {
			h.dir(h.root, "etc", 0o755)
			h.file(h.outside, "target", "untouched", 0o644)
			h.symlink(filepath.Join(h.outside, "target"), h.root, "etc/hostname")
			h.file(h.seg, "etc/hostname", "node01\n", 0o644)
		},
		check: func(t *testing.T, h *hookTree) {
			if c := content(t, filepath.Join(h.outside, "target")); c != "untouched" {
				t.Errorf("the link's target became %q", c)
			}
			if m := mode(t, filepath.Join(h.root, "etc/hostname")); !m.IsRegular() {
				t.Errorf("/etc/hostname is %v, want a file", m)
			}
		},
	}, {
		name: "an upper-case BOOTIF drops the boot interface's network files alone",
		setup: func(h *hookTree) {
			h.dir(h.root, "etc", 0o755)
			h.iface("lo", "00:00:00:00:00:00")
			h.iface("ens3", "52:54:00:ab:cd:ef")
			h.iface("ens4", "52:54:00:ab:cd:f0")
			for _, i := range []string{"ens3", "ens4"} {
				h.file(h.seg, "etc/systemd/network/10-nroot-"+i+".network", "[Match]\nName="+i+"\n", 0o644)
				h.file(h.seg, "etc/nroot/network.d/"+i+".sh", "#\n", 0o644)
			}
		},
		bootif: "01-52-54-00-AB-CD-EF",
		check: func(t *testing.T, h *hookTree) {
			for _, rel := range []string{"etc/systemd/network/10-nroot-ens3.network", "etc/nroot/network.d/ens3.sh"} {
				if _, err := os.Lstat(filepath.Join(h.root, rel)); err == nil {
					t.Errorf("/%s was placed for the boot interface", rel)
				}
			}
			for _, rel := range []string{"etc/systemd/network/10-nroot-ens4.network", "etc/nroot/network.d/ens4.sh"} {
				if _, err := os.Lstat(filepath.Join(h.root, rel)); err != nil {
					t.Errorf("/%s was not placed for the other interface: %v", rel, err)
				}
			}
		},
	}}
	for _, tc := range tests {
		for _, sh := range shells {
			t.Run(filepath.Base(sh)+"/"+tc.name, func(t *testing.T) {
				h := newHookTree(t)
				tc.setup(h)
				out, died := h.run(sh, tc.bootif)
				if died != tc.died {
					t.Fatalf("died %v, want %v; output:\n%s", died, tc.died, out)
				}
				if n := strings.Count(out, "warn: "); n != tc.warns {
					t.Errorf("%d warnings, want %d; output:\n%s", n, tc.warns, out)
				}
				if tc.died && !strings.Contains(out, "die: nroot-identity: /etc/") {
					t.Errorf("died without naming the file:\n%s", out)
				}
				tc.check(t, h)
			})
		}
	}
}
