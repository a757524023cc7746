//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nroot/verify/nfsclient"
)

// TestProbeFailsClosed reads consoles as boot does and checks that only
// a complete report of a boot that ended "running" passes.
func TestProbeFailsClosed(t *testing.T) {
	report := func(state string, extra ...string) []string {
		lines := []string{"[  OK  ] Reached target multi-user.target - Multi-User System.", "NROOT-PROBE system-state=" + state}
		lines = append(lines, extra...)
		return append(lines, "NROOT-PROBE kernel=6.1.0-57-amd64", "NROOT-PROBE root-fstype=overlay", "NROOT-PROBE write=ok",
			"NROOT-PROBE machine-id=0123456789abcdef0123456789abcdef", "NROOT-PROBE done")
	}
	for _, c := range []struct {
		name    string
		console []string
		fails   string // "" when the boot passes
	}{
		{"a boot that ended running passes", report("running"), ""},
		{"a degraded boot fails and names its failed unit", report("degraded", "NROOT-PROBE failed-unit=foo.service loaded failed failed Foo"), "foo.service"},
		{"maintenance fails", report("maintenance"), `"maintenance"`},
		{"systemctl's own error fails", report("Failed to connect to bus: No such file or directory"), "Failed to connect to bus"},
		{"a wait that timed out fails and names the jobs left", report("timeout:starting", "NROOT-PROBE job=123 foo.service start running"), "foo.service start"},
		{"an empty state fails", report(""), `ended ""`},
		{"running with a failed unit still fails", report("running", "NROOT-PROBE failed-unit=bar.service loaded failed failed Bar"), "bar.service"},
		{"a state that only starts with running fails", report("running-ish"), "running-ish"},
		{"no state line fails", []string{"NROOT-PROBE kernel=6.1.0-57-amd64", "NROOT-PROBE root-fstype=overlay", "NROOT-PROBE write=ok", "NROOT-PROBE machine-id=0123", "NROOT-PROBE done"}, `ended ""`},
		{"a report cut short fails", report("running")[:4], "did not report"},
		{"no report at all fails", []string{"Kernel panic - not syncing: VFS: Unable to mount root fs"}, "did not report"},
		{"no kernel line fails", []string{"NROOT-PROBE system-state=running", "NROOT-PROBE root-fstype=overlay", "NROOT-PROBE write=ok", "NROOT-PROBE machine-id=0123", "NROOT-PROBE done"}, "kernel"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p probe
			for i, l := range c.console {
				p.parse(l+"\r", time.Duration(i)*time.Second)
			}
			err := p.booted(t.TempDir())
			switch {
			case c.fails == "" && err != nil:
				t.Fatalf("booted: %v", err)
			case c.fails != "" && err == nil:
				t.Fatalf("booted passes %q", c.console)
			case c.fails != "" && !strings.Contains(err.Error(), c.fails):
				t.Fatalf("booted: %v; want it to say %q", err, c.fails)
			}
		})
	}
}

// TestIdentityReachable checks what the export walk refuses: a node's
// segment, the image's nodes/ directory, a private host key.
func TestIdentityReachable(t *testing.T) {
	segments := map[string]bool{"node01.img": true}
	for _, c := range []struct {
		name  string
		paths []string
		fails bool
	}{
		{"the generations alone pass", []string{"", "nroot", "nroot/generations", "nroot/generations/1/initrd.img", "nroot/generations/1/root/etc/ssh/ssh_host_ed25519_key.pub"}, false},
		{"a directory named nodes inside a root passes", []string{"nroot/generations/1/root/usr/share/doc/nodes"}, false},
		{"the whole image directory fails", []string{"nroot", "nroot/generations", "nroot/nodes", "nroot/nodes/node01.img"}, true},
		{"a segment anywhere fails", []string{"check/node01.img"}, true},
		{"a private host key fails", []string{"nroot/generations/1/root/etc/ssh/ssh_host_rsa_key"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tree := nfsclient.Tree{}
			for _, p := range c.paths {
				tree[p] = &nfsclient.Node{}
			}
			if err := identityReachable(tree, segments); (err != nil) != c.fails {
				t.Fatalf("identityReachable(%v) = %v; want failure %v", c.paths, err, c.fails)
			}
		})
	}
}

// TestRootFrom reads image-mode reports as the cluster test does: the
// NFS image's loop file must be on an NFS volume of the server, the HTTP
// image's on no NFS volume at all.
func TestRootFrom(t *testing.T) {
	vol := "v4 0a210001  801 0:53         f0d8e3c1c6e2c7a5:0                no"
	n := netNodes[2]
	for _, c := range []struct {
		name, mode, loop string
		volumes          []string
		ok               bool
	}{
		{"NFS image on the server's volume", "nfs-squashfs", "/root.squashfs 0:53", []string{vol}, true},
		{"NFS image as losetup --raw pads it", "nfs-squashfs", `/root.squashfs \x20\x20\x20\x20\x20\x20\x200:53\x20`, []string{vol}, true},
		{"NFS image on another device", "nfs-squashfs", "/root.squashfs 0:54", []string{vol}, false},
		{"NFS image of another server", "nfs-squashfs", "/root.squashfs 0:53", []string{strings.Replace(vol, "0a210001", "0a210002", 1)}, false},
		{"NFS boot without a loop device", "nfs-squashfs", "", []string{vol}, false},
		{"another file on the volume", "nfs-squashfs", "/root.erofs 0:53", []string{vol}, false},
		{"HTTP image in RAM", "http-squashfs", "/tmp/curl_fetch_url1/root.squashfs 0:1", nil, true},
		{"HTTP image in RAM, removed once attached", "http-squashfs", `/tmp/curl_fetch_url0/root.squashfs\x20(deleted) \x20\x20\x20\x20\x20\x20\x200:2\x20\x20`, nil, true},
		{"HTTP image with NFS mounted", "http-squashfs", "/tmp/curl_fetch_url1/root.squashfs 0:1", []string{vol}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := probe{rootLoop: c.loop, nfsVolumes: c.volumes, uniqueID: uniquifier(n)}
			if err := rootFrom(nodeBoot{node: n, gen: 1, mode: c.mode}, p); (err == nil) != c.ok {
				t.Errorf("rootFrom: %v, want ok %v", err, c.ok)
			}
		})
	}
}

// TestImageRoot reads the suites' image boots on QEMU's user network,
// where the server is 10.0.2.2 (0a000202), erofs beside squashfs.
func TestImageRoot(t *testing.T) {
	vol := "v4 0a000202  801 0:53         f0d8e3c1c6e2c7a5:0                no"
	for _, c := range []struct {
		name, base, server, loop, source string
		volumes                          []string
		ok                               bool
	}{
		{"erofs over NFS", "root.erofs", userNetHost, "/root.erofs 0:53", "", []string{vol}, true},
		{"erofs over NFS, the squashfs attached", "root.erofs", userNetHost, "/root.squashfs 0:53", "", []string{vol}, false},
		{"erofs over HTTP", "root.erofs", "", `/tmp/curl_fetch_url0/root.erofs\x20(deleted) 0:2`, "", nil, true},
		{"squashfs over NFS from another server", "root.squashfs", userNetHost, "/root.squashfs 0:53", "", []string{strings.Replace(vol, "0a000202", "0a210001", 1)}, false},
		{"squashfs over HTTP, an NFS root beside it", "root.squashfs", "", "/tmp/curl_fetch_url0/root.squashfs 0:2", "10.0.2.2:/node", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := probe{rootLoop: c.loop, nfsVolumes: c.volumes, rootSource: c.source}
			if err := imageRoot(p, c.base, c.server); (err == nil) != c.ok {
				t.Errorf("imageRoot: %v, want ok %v", err, c.ok)
			}
		})
	}
}

// TestImageSent checks what counts in the access log as the file sent.
func TestImageSent(t *testing.T) {
	for _, c := range []struct {
		name, log string
		fails     bool
	}{
		{"a whole GET passes", "127.0.0.1 \"HEAD /root.squashfs HTTP/1.1\" 200 0\n127.0.0.1 \"GET /root.squashfs HTTP/1.1\" 200 1234\n", false},
		{"a HEAD alone fails", "127.0.0.1 \"HEAD /root.squashfs HTTP/1.1\" 200 0\n", true},
		{"a short body fails", "127.0.0.1 \"GET /root.squashfs HTTP/1.1\" 200 1000\n", true},
		{"a partial answer fails", "127.0.0.1 \"GET /root.squashfs HTTP/1.1\" 206 1234\n", true},
		{"another file fails", "127.0.0.1 \"GET /root.erofs HTTP/1.1\" 200 1234\n", true},
		{"an empty log fails", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &imageHTTP{logPath: filepath.Join(t.TempDir(), "access.log")}
			if err := os.WriteFile(s.logPath, []byte(c.log), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := s.sent("/root.squashfs", 1234); (err != nil) != c.fails {
				t.Fatalf("sent = %v; want failure %v", err, c.fails)
			}
		})
	}
}
