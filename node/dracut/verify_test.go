package dracut

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nroot/format/report"
	"nroot/node/initrd"
)

// TestVerifyNamesWhatIsMissing: an image packed from a tree that has a
// kernel module but none of dracut's pieces fails the checks for each of
// them, by name.
func TestVerifyNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/kernel/fs"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/kernel/fs/overlay.ko"), []byte("ko"), 0o644)
	os.WriteFile(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/modules.dep"), []byte("kernel/fs/overlay.ko:\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/bin/tool"), []byte("binary"), 0o755)
	var b bytes.Buffer
	if err := initrd.Pack(&b, dir, initrd.PackOptions{Compression: initrd.Zstd}); err != nil {
		t.Fatal(err)
	}
	checks, _, err := Verify(bytes.NewReader(b.Bytes()), Options{NFS: true, Overlay: true})
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]bool{}
	for _, c := range checks {
		if !c.Passed() {
			failed[c.Name] = true
		}
	}
	for _, want := range []string{"init", "dracut-modules", "nfs-mount", "overlay-hook", "kernel-modules"} {
		if !failed[want] {
			t.Errorf("check %s did not fail on an image without it: %+v", want, checks)
		}
	}
}

// TestVerifyModes: each boot mode fails, by name, on an image that lacks
// what that mode needs, and passes what it has.
func TestVerifyModes(t *testing.T) {
	const k = "6.1.0-9-amd64"
	live := map[string]string{
		"usr/lib/dracut/modules.txt":                       "base\nnetwork\nnetwork-legacy\nnfs\ndmsquash-live\nlivenet\noverlayfs\n",
		"usr/lib/dracut/hooks/cmdline/29-parse-livenet.sh": "#!/bin/sh\n",
		"sbin/dmsquash-live-root":                          "#!/bin/sh\n",
		"sbin/livenetroot":                                 "#!/bin/sh\n",
		"lib/url-lib.sh":                                   "#!/bin/sh\n",
		"usr/sbin/losetup":                                 "binary",
		"lib/nfs-lib.sh":                                   "#!/bin/sh\n",
		"usr/sbin/mount.nfs":                               "binary",
		"lib/modules/" + k + "/kernel/fs/overlay.ko":       "ko",
		"lib/modules/" + k + "/kernel/fs/squashfs.ko":      "ko",
		"lib/modules/" + k + "/kernel/fs/nfs.ko":           "ko",
		"lib/modules/" + k + "/kernel/fs/nfsv4.ko":         "ko",
		"lib/modules/" + k + "/kernel/net/sunrpc.ko":       "ko",
		"lib/modules/" + k + "/modules.dep":                "kernel/fs/overlay.ko:\nkernel/fs/squashfs.ko:\nkernel/fs/nfs.ko: kernel/net/sunrpc.ko\nkernel/fs/nfsv4.ko: kernel/fs/nfs.ko kernel/net/sunrpc.ko\nkernel/net/sunrpc.ko:\n",
		"lib/modules/" + k + "/modules.builtin":            "kernel/drivers/block/loop.ko\n",
	}
	without := func(names ...string) map[string]string { return edited(live, nil, names...) }
	for _, c := range []struct {
		name   string
		mode   string
		format string
		files  map[string]string
		fail   []string
		pass   []string
	}{
		{"http without curl", "http-image", "", live, []string{"http-fetch"}, []string{"dracut-live", "dracut-livenet", "live-root", "url-lib", "losetup", "kernel-modules"}},
		{"nfs image has what it needs", "nfs-image", "", live, nil, []string{"dracut-live", "livenet-root", "dracut-nfs", "nfs-mount", "kernel-modules"}},
		{"nfs image without livenet", "nfs-image", "", without("sbin/livenetroot", "usr/lib/dracut/hooks/cmdline/29-parse-livenet.sh"), []string{"livenet-root", "livenet-cmdline-hook"}, []string{"live-root"}},
		{"erofs image without erofs", "nfs-image", "erofs", live, []string{"kernel-modules"}, []string{"live-root"}},
		{"nfs image without squashfs", "nfs-image", "", without("lib/modules/" + k + "/kernel/fs/squashfs.ko"), []string{"kernel-modules"}, nil},
		{"tree mode needs no live", "tree", "", without("sbin/dmsquash-live-root"), nil, []string{"dracut-nfs"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, content := range c.files {
				os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755)
				os.WriteFile(filepath.Join(dir, n), []byte(content), 0o755)
			}
			var b bytes.Buffer
			if err := initrd.Pack(&b, dir, initrd.PackOptions{Compression: initrd.Zstd}); err != nil {
				t.Fatal(err)
			}
			o := Options{Kver: k, ImageFormat: c.format}
			if err := o.SetMode(c.mode); err != nil {
				t.Fatal(err)
			}
			checks, _, err := Verify(bytes.NewReader(b.Bytes()), o)
			if err != nil {
				t.Fatal(err)
			}
			status := map[string]bool{}
			for _, ch := range checks {
				status[ch.Name] = ch.Passed()
			}
			for _, n := range c.fail {
				if pass, ok := status[n]; !ok || pass {
					t.Errorf("check %s: ran %v, passed %v; want a failure: %+v", n, ok, pass, checks)
				}
			}
			for _, n := range c.pass {
				if !status[n] {
					t.Errorf("check %s did not pass: %+v", n, checks)
				}
			}
			if c.mode == "tree" {
				if _, ok := status["live-root"]; ok {
					t.Errorf("tree mode ran the live checks")
				}
			}
		})
	}
	if err := new(Options).SetMode("nbd"); err == nil {
		t.Error("SetMode accepted an unknown mode")
	}
}

// TestVerifyOtherGenerators: on an image another generator made, dracut's
// checks are SKIP, naming it; the generic ones still run; a boot mode
// that needs dracut fails once, by the check "generator".
func TestVerifyOtherGenerators(t *testing.T) {
	const k = "6.1.0-9-amd64"
	common := map[string]string{
		"init":                                   "#!/bin/sh\n",
		"lib/modules/" + k + "/kernel/fs/nfs.ko": "ko",
		"lib/modules/" + k + "/modules.dep":      "kernel/fs/nfs.ko:\n",
		"lib/modules/" + k + "/modules.builtin":  "kernel/fs/overlayfs/overlay.ko\n",
	}
	for _, c := range []struct {
		gen   string
		marks []string
	}{
		{"initramfs-tools", []string{"conf/initramfs.conf", "scripts/functions"}},
		{"mkinitcpio", []string{"init_functions", "buildconfig"}},
		{"", nil}, // unknown: dracut's checks fail, as on a broken dracut image
	} {
		t.Run(c.gen, func(t *testing.T) {
			dir := t.TempDir()
			files := maps.Clone(common)
			for _, m := range c.marks {
				files[m] = "x\n"
			}
			for name, data := range files {
				os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
				os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755)
			}
			var b bytes.Buffer
			if err := initrd.Pack(&b, dir, initrd.PackOptions{Compression: initrd.Gzip}); err != nil {
				t.Fatal(err)
			}
			for _, mode := range []Options{{}, {NFS: true, Overlay: true}} {
				checks, info, err := Verify(bytes.NewReader(b.Bytes()), mode)
				if err != nil {
					t.Fatal(err)
				}
				if info.Generator != c.gen {
					t.Fatalf("generator %q, want %q", info.Generator, c.gen)
				}
				status := map[string]report.Status{}
				for _, ch := range checks {
					status[ch.Name] = ch.Status
				}
				wantMods, wantGen := report.Skip, report.Status("")
				if c.gen == "" {
					wantMods = report.Fail
				} else if mode.NFS {
					wantGen = report.Fail
				}
				if status["dracut-modules"] != wantMods || status["generator"] != wantGen || status["init"] != report.Pass {
					t.Errorf("%+v: %+v", mode, checks)
				}
				if mode.NFS && c.gen != "" && (status["dracut-nfs"] != report.Skip || status["overlay-hook"] != report.Skip) {
					t.Errorf("%+v: dracut's NFS and overlay checks are not SKIP: %+v", mode, checks)
				}
				if !mode.NFS && c.gen != "" && report.Failed(checks) != 0 {
					t.Errorf("plain verify of a sound %s image fails: %+v", c.gen, checks)
				}
			}
		})
	}
}

// TestVerifyInit: a dracut image's /init is systemd with initrd.target
// and the units that run dracut's hooks, or dracut's shell /init with
// what init.sh runs; either passes when whole, and each fails, by
// name, on what it lacks.
func TestVerifyInit(t *testing.T) {
	const units = "usr/lib/systemd/system/"
	systemd := map[string]string{
		"usr/lib/dracut/modules.txt":       "base\nsystemd\nsystemd-initrd\ndracut-systemd\nnetwork\nnetwork-legacy\n",
		"usr/lib/systemd/systemd":          "\x7fELF not really",
		units + "initrd.target":            "[Unit]\n",
		units + "dracut-cmdline.service":   "[Unit]\n",
		units + "dracut-pre-udev.service":  "[Unit]\n",
		units + "dracut-initqueue.service": "[Unit]\n",
		units + "dracut-pre-pivot.service": "[Unit]\n",
		"usr/lib/systemd/systemd-udevd":    "binary",
		"usr/bin/udevadm":                  "binary",
		"usr/lib/dracut-lib.sh":            "#!/bin/sh\n",
	}
	shell := map[string]string{
		"usr/lib/dracut/modules.txt":    "base\nudev-rules\nnetwork\nnetwork-legacy\n",
		"init":                          "#!/bin/sh\n\n# dracut's init.sh\n",
		"usr/bin/bash":                  "binary",
		"usr/sbin/switch_root":          "binary",
		"usr/lib/dracut-lib.sh":         "#!/bin/sh\n",
		"usr/lib/systemd/systemd-udevd": "binary",
		"usr/bin/udevadm":               "binary",
	}
	for _, c := range []struct {
		name   string
		files  map[string]string
		check  string
		pass   bool
		detail string
	}{
		{"systemd with initrd.target and hook units", systemd, "init-systemd", true, "initrd.target"},
		{"systemd without initrd.target", edited(systemd, nil, units+"initrd.target"), "init-systemd", false, "lacks initrd.target"},
		{"systemd without dracut-systemd's pre-pivot unit", edited(systemd, nil, units+"dracut-pre-pivot.service"), "init-systemd", false, "dracut-pre-pivot.service"},
		{"systemd with the network, without the initqueue's unit", edited(systemd, nil, units+"dracut-initqueue.service"), "init-systemd", false, "dracut-initqueue.service"},
		{"a local-disk systemd image of dracut 108, without the initqueue's unit", edited(systemd, map[string]string{"usr/lib/dracut/modules.txt": "base\nsystemd\nsystemd-initrd\ndracut-systemd\nrootfs-block\n"}, units+"dracut-initqueue.service"), "init-systemd", true, ""},
		{"systemd's units in /lib", edited(systemd, map[string]string{"lib/systemd/system/initrd.target": "[Unit]\n"}, units+"initrd.target"), "init-systemd", true, ""},
		{"dracut's shell init", shell, "init-shell", true, "usr/bin/bash"},
		{"shell init without switch_root", edited(shell, nil, "usr/sbin/switch_root"), "init-shell", false, "switch_root is missing"},
		{"shell init without udevd", edited(shell, nil, "usr/lib/systemd/systemd-udevd"), "init-shell", false, "udevd is missing"},
		{"shell init without its interpreter", edited(shell, map[string]string{"init": "#!/bin/dash\n"}), "init-shell", false, `interpreter "/bin/dash"`},
		{"shell init with systemd-networkd", edited(shell, map[string]string{"usr/lib/dracut/modules.txt": "base\nnetwork\nsystemd-networkd\n"}), "init-shell", false, "systemd-networkd needs systemd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, content := range c.files {
				os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755)
				os.WriteFile(filepath.Join(dir, n), []byte(content), 0o755)
			}
			os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
			os.Symlink("../usr/bin/bash", filepath.Join(dir, "bin/sh"))
			if _, ok := c.files["usr/lib/systemd/systemd"]; ok {
				os.Symlink("usr/lib/systemd/systemd", filepath.Join(dir, "init"))
			}
			var b bytes.Buffer
			if err := initrd.Pack(&b, dir, initrd.PackOptions{Compression: initrd.Zstd}); err != nil {
				t.Fatal(err)
			}
			checks, _, err := Verify(bytes.NewReader(b.Bytes()), Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got *report.Check
			for i := range checks {
				if checks[i].Name == c.check {
					got = &checks[i]
				}
				if n := checks[i].Name; n != c.check && strings.HasPrefix(n, "init-") {
					t.Errorf("ran %s too: %+v", n, checks[i])
				}
			}
			if got == nil {
				t.Fatalf("no %s check: %+v", c.check, checks)
			}
			if got.Passed() != c.pass || !strings.Contains(got.Detail, c.detail) {
				t.Errorf("%s: passed %v (%s), want %v with %q", c.check, got.Passed(), got.Detail, c.pass, c.detail)
			}
		})
	}
}

// edited is a copy of an image's files with set's written over them and
// del's removed.
func edited(base, set map[string]string, del ...string) map[string]string {
	m := maps.Clone(base)
	maps.Copy(m, set)
	for _, n := range del {
		delete(m, n)
	}
	return m
}
