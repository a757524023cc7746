package nfscheck_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nroot/build/lockfile"
	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/verify/nfscheck"
	"nroot/verify/nfsclient"
)

// fixtureRoot builds a small root filesystem with what the checks look
// at: merged-/usr links, an init reached through two symlinks, a kernel
// with its modules, root-only files, a setuid binary.
func fixtureRoot(t *testing.T) string {
	root := filepath.Join(t.TempDir(), "root")
	mk := func(p string, mode os.FileMode, data string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(full, mode)
	}
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib/systemd", "etc/ssh", "boot", "usr/lib/modules/6.1.0-9-amd64/kernel", "root", "var/lib/dpkg"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.Chmod(filepath.Join(root, "root"), 0o700)
	for _, l := range []struct{ name, target string }{{"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}, {"usr/sbin/init", "../lib/systemd/systemd"}} {
		os.Symlink(l.target, filepath.Join(root, l.name))
	}
	mk("usr/lib/systemd/systemd", 0o755, "\x7fELF systemd")
	mk("usr/bin/su", 0o755|os.ModeSetuid, "\x7fELF su")
	mk("boot/vmlinuz-6.1.0-9-amd64", 0o644, strings.Repeat("k", 300000))
	mk("usr/lib/modules/6.1.0-9-amd64/kernel/nfs.ko", 0o644, "module")
	mk("etc/shadow", 0o640, "root:*:20000:0:99999:7:::\n")
	os.Chown(filepath.Join(root, "etc/shadow"), 0, 42)
	mk("root/.profile", 0o600, "secret")
	mk("etc/machine-id", 0o444, "uninitialized\n")
	mk("etc/fstab", 0o644, "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
	mk("boot/nroot-cmdline", 0o644, "root=nfs4:SERVER:/PATH ro ip=dhcp rd.neednet=1 rootovl\n")
	mk("var/lib/dpkg/status", 0o644, "Package: base-files\nStatus: install ok installed\nVersion: 13.8\n\nPackage: dash\nStatus: install ok installed\nVersion: 0.5.12-12\n")
	return root
}

func startServer(t *testing.T, exports ...ganesha.Export) *ganesha.Server {
	testenv.Root(t)
	testenv.Command(t, "ganesha.nfsd")
	s, err := ganesha.Start(context.Background(), exports, ganesha.Options{})
	if err != nil {
		if testenv.CI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func target(s *ganesha.Server, path string) nfsclient.Target {
	return nfsclient.Target{Host: "127.0.0.1", NFSPort: s.NFSPort, MountPort: s.MountPort, Path: path}
}

func statuses(r *nfscheck.Report) map[string]string {
	m := map[string]string{}
	for _, c := range r.Checks {
		if m[c.Name] != "FAIL" {
			m[c.Name] = string(c.Status)
		}
	}
	return m
}

func TestExportMatchesRootfs(t *testing.T) {
	root := fixtureRoot(t)
	s := startServer(t, ganesha.Export{ID: 1, Path: root, Pseudo: "/node"})
	rep, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: target(s, root), Rootfs: root, Deep: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Differences) != 0 {
		t.Fatalf("differences: %+v", rep.Differences)
	}
	for name, st := range statuses(rep) {
		if st != "PASS" {
			t.Errorf("check %s: %s", name, st)
		}
	}
	if rep.Stats.Entries < 20 || rep.EntriesPerS <= 0 || rep.Stats.BytesRead < 300000 || rep.FSInfo == nil || len(rep.Exports) == 0 {
		t.Errorf("figures: %+v exports %v", rep.Stats, rep.Exports)
	}

	// Change a mode, a symlink and a file's content (same size) on the
	// server side: exactly these three are reported.
	os.Chmod(filepath.Join(root, "usr/bin/su"), 0o755)
	os.Remove(filepath.Join(root, "bin"))
	os.Symlink("usr/sbin", filepath.Join(root, "bin"))
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789abc\n"), 0o444)
	local := fixtureRoot(t)
	rep, err = nfscheck.Run(context.Background(), nfscheck.Options{Target: target(s, root), Rootfs: local, Deep: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range rep.Differences {
		got[d.Path] = d.Kind + ":" + d.Fields
	}
	want := map[string]string{"/usr/bin/su": "changed:mode", "/bin": "changed:target", "/etc/machine-id": "changed:content"}
	if len(got) != len(want) || rep.Changed != 3 {
		t.Fatalf("differences %v, want %v", got, want)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	if statuses(rep)["machine-id"] != "FAIL" {
		t.Error("a fixed machine-id was not reported")
	}
}

func TestRootSquash(t *testing.T) {
	root := fixtureRoot(t)
	s := startServer(t, ganesha.Export{ID: 2, Path: root, Pseudo: "/squashed", RootSquash: true})
	rep, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: target(s, root), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Checks {
		if c.Name == "root-squash" {
			if c.Status != "FAIL" || !strings.Contains(c.Detail, "/etc/shadow") || !strings.Contains(c.Fix, "no_root_squash") {
				t.Fatalf("root-squash check: %+v", c)
			}
			return
		}
	}
	t.Fatal("no root-squash check")
}

func TestLockComparison(t *testing.T) {
	root := fixtureRoot(t)
	s := startServer(t, ganesha.Export{ID: 3, Path: root, Pseudo: "/l"})
	plan := &lockfile.Plan{Packages: []lockfile.Package{{Name: "base-files", Version: "13.8"}, {Name: "dash", Version: "0.5.12-13"}, {Name: "bash", Version: "5.2"}}}
	rep, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: target(s, root), Lock: plan, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Missing != 1 || rep.Changed != 1 {
		t.Fatalf("differences %+v", rep.Differences)
	}
}

// TestUnhappyPaths: each failure gives a step error within the timeout.
func TestUnhappyPaths(t *testing.T) {
	root := fixtureRoot(t)
	s := startServer(t, ganesha.Export{ID: 4, Path: root, Pseudo: "/u"})
	const timeout = 4 * time.Second
	run := func(tg nfsclient.Target) (time.Duration, error) {
		start := time.Now()
		_, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: tg, Timeout: timeout})
		return time.Since(start), err
	}
	check := func(name string, tg nfsclient.Target, step, text string) {
		t.Run(name, func(t *testing.T) {
			took, err := run(tg)
			var se *nfsclient.StepError
			if !errors.As(err, &se) || se.Step != step || !strings.Contains(err.Error(), text) {
				t.Fatalf("err = %v, want step %s mentioning %q", err, step, text)
			}
			if took > timeout+3*time.Second {
				t.Fatalf("took %v with a %v timeout", took, timeout)
			}
		})
	}
	check("wrong path", target(s, "/no/such/export"), "mount", "the server exports "+root)
	closed := nfsclient.Target{Host: "127.0.0.1", NFSPort: 1, MountPort: 1, Path: root}
	check("server not running", closed, "mount", "refused")

	t.Run("slow server", func(t *testing.T) {
		s.Pause()
		defer s.Resume()
		took, err := run(target(s, root))
		if err == nil || took > timeout+3*time.Second {
			t.Fatalf("err = %v after %v", err, took)
		}
		var se *nfsclient.StepError
		if !errors.As(err, &se) {
			t.Fatalf("not a step error: %v", err)
		}
	})
	t.Run("connection dropped mid-walk", func(t *testing.T) {
		big := filepath.Join(root, "many")
		for i := range 3000 {
			os.MkdirAll(filepath.Join(big, "d"+string(rune('a'+i%26)), "x"+itoa(i)), 0o755)
		}
		s2 := startServer(t, ganesha.Export{ID: 5, Path: root, Pseudo: "/d"})
		go func() {
			time.Sleep(150 * time.Millisecond)
			s2.Stop()
		}()
		took, err := run(target(s2, root))
		if err == nil {
			t.Skip("the walk finished before the server stopped")
		}
		var se *nfsclient.StepError
		if !errors.As(err, &se) || took > timeout+3*time.Second {
			t.Fatalf("err = %v after %v", err, took)
		}
	})
}

func itoa(i int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+i%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i/100%10)) + string(rune('0'+i/1000%10)))
}

// TestUnprivileged runs nroot check as nobody: with an unprivileged
// source port it works against an export that allows it, and an export
// that demands a privileged port is explained.
func TestUnprivileged(t *testing.T) {
	root := fixtureRoot(t)
	os.Chmod(filepath.Dir(root), 0o755)
	s := startServer(t, ganesha.Export{ID: 6, Path: root, Pseudo: "/open"})
	bin := filepath.Join(t.TempDir(), "nroot")
	if out, err := exec.Command("go", "build", "-o", bin, "nroot/cmd/nroot").CombinedOutput(); err != nil {
		t.Fatalf("build: %v %s", err, out)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	asNobody := func(args ...string) (string, int) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	url := "nfs://127.0.0.1:" + itoaPort(s.NFSPort) + root
	out, code := asNobody("check", "--mount-port", itoaPort(s.MountPort), "--timeout", "20s", url)
	if code != 0 || !strings.Contains(out, "walked") {
		t.Fatalf("as nobody: exit %d\n%s", code, out)
	}
	s.Stop()
	s2 := startServer(t, ganesha.Export{ID: 7, Path: root, Pseudo: "/secure", PrivilegedPort: true})
	url = "nfs://127.0.0.1:" + itoaPort(s2.NFSPort) + root
	out, code = asNobody("check", "--mount-port", itoaPort(s2.MountPort), "--timeout", "20s", url)
	if code != 2 || !strings.Contains(out, "insecure") {
		t.Fatalf("privileged-port export as nobody: exit %d\n%s", code, out)
	}
}

func itoaPort(p int) string { return strings.TrimSpace(fmtInt(p)) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

// TestNFSv4Only checks an export over NFSv4.1 against a server with NFSv3
// turned off: the same walk, comparison and checks pass; a change on the
// server is found; NFSv3 and a path outside the pseudo file system fail
// at the step that names them.
func TestNFSv4Only(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "ganesha.nfsd")
	root := fixtureRoot(t)
	s, err := ganesha.Start(context.Background(), []ganesha.Export{{ID: 1, Path: root, Pseudo: "/node"}}, ganesha.Options{V4Only: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	v4 := nfsclient.Target{Host: "127.0.0.1", NFSPort: s.NFSPort, Path: "/node", Version: 4}
	rep, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: v4, Rootfs: root, Deep: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Differences) != 0 {
		t.Fatalf("differences over NFSv4.1: %+v", rep.Differences)
	}
	for name, st := range statuses(rep) {
		if st != "PASS" {
			t.Errorf("check %s: %s", name, st)
		}
	}
	local, err := nfsclient.WalkLocal(root, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.NFSVersion != "4.1" || rep.Stats.Entries != int64(len(local)-1) || rep.Stats.BytesRead < 300000 {
		t.Errorf("version %s, %d entries listed (the tree has %d below its root), %d bytes read", rep.NFSVersion, rep.Stats.Entries, len(local)-1, rep.Stats.BytesRead)
	}

	os.Chmod(filepath.Join(root, "usr/bin/su"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789abc\n"), 0o444)
	rep, err = nfscheck.Run(context.Background(), nfscheck.Options{Target: v4, Rootfs: fixtureRoot(t), Deep: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range rep.Differences {
		got[d.Path] = d.Kind + ":" + d.Fields
	}
	if len(got) != 2 || got["/usr/bin/su"] != "changed:mode" || got["/etc/machine-id"] != "changed:content" {
		t.Errorf("differences %v, want su's mode and machine-id's content", got)
	}

	for _, c := range []struct {
		name string
		t    nfsclient.Target
		step string
	}{
		{"NFSv3 to a v4-only server", nfsclient.Target{Host: "127.0.0.1", NFSPort: s.NFSPort, Path: root}, "portmap"},
		{"a path outside the pseudo file system", nfsclient.Target{Host: "127.0.0.1", NFSPort: s.NFSPort, Path: "/nothing", Version: 4}, "mount"},
	} {
		_, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: c.t, Timeout: 10 * time.Second})
		var se *nfsclient.StepError
		if !errors.As(err, &se) {
			t.Errorf("%s: %v, want a StepError", c.name, err)
			continue
		}
		if c.name == "NFSv3 to a v4-only server" && se.Step != "portmap" && se.Step != "mount" {
			t.Errorf("%s: step %s (%v)", c.name, se.Step, err)
		} else if c.name != "NFSv3 to a v4-only server" && se.Step != c.step {
			t.Errorf("%s: step %s, want %s (%v)", c.name, se.Step, c.step, err)
		}
	}
}

// TestNFSv4NamedOwners: a server with nfs-ganesha's default owners
// (names, user@domain, from the server's user database) is checked as a
// node sees it: names go through the export's own /etc/passwd and
// /etc/group, numbers the server could not name stay numbers, and an
// identical tree shows no difference. A name the export's database lacks
// is reported as such, never mapped to nobody.
func TestNFSv4NamedOwners(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "ganesha.nfsd")
	root := fixtureRoot(t)
	write := func(p, data string, uid, gid int) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(full, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// The export's numbering: shadow, staff and daemon as the host has
	// them (sent as names), 4321 and 2345 only here (sent as numbers).
	write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\nbin:x:2:2::/:/bin/false\nlocal:x:4321:2345::/:/bin/false\n", 0, 0)
	write("etc/group", "root:x:0:\ndaemon:x:1:\nbin:x:2:\nshadow:x:42:\nstaff:x:50:\nlocal:x:2345:\n", 0, 0)
	write("var/local/staffed", "x", 1, 50)
	write("home/local/file", "x", 4321, 2345)
	write("usr/bin/binned", "x", 2, 2)
	s, err := ganesha.Start(context.Background(), []ganesha.Export{{ID: 1, Path: root, Pseudo: "/node"}}, ganesha.Options{V4Only: true, NamedOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	v4 := nfsclient.Target{Host: "127.0.0.1", NFSPort: s.NFSPort, Path: "/node", Version: 4}
	rep, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: v4, Rootfs: root, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Differences) != 0 {
		t.Fatalf("differences on an identical tree: %+v", rep.Differences)
	}
	if st := statuses(rep)["owner-names"]; st != "PASS" {
		t.Errorf("owner-names %q, want PASS (the server sent names: %v)", st, rep.Checks)
	}
	// bin leaves the export's user database: /usr/bin/binned's owner
	// and group, sent as bin@domain, map to nothing there.
	write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\nlocal:x:4321:2345::/:/bin/false\n", 0, 0)
	write("etc/group", "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nstaff:x:50:\nlocal:x:2345:\n", 0, 0)
	rep, err = nfscheck.Run(context.Background(), nfscheck.Options{Target: v4, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var owners *nfscheck.Check
	for i := range rep.Checks {
		if rep.Checks[i].Name == "owner-names" {
			owners = &rep.Checks[i]
		}
	}
	if owners == nil || owners.Status != "FAIL" || !strings.Contains(owners.Detail, "/usr/bin/binned") || !strings.Contains(owners.Detail, `"bin@`) || !rep.Failed() {
		t.Fatalf("owner-names %+v, want a failure naming /usr/bin/binned and bin@DOMAIN", owners)
	}
}

// TestNFSv4DefaultOwnersMinbase: nfs-ganesha with its default owner
// settings (no Only_Numeric_Owners), exporting a root whose files belong
// to the users and groups of its own /etc/passwd and /etc/group, as a
// bookworm minbase's do. The server names the ids its host has (root,
// daemon, mail, shadow, utmp, staff...) and sends the others as numbers;
// checked against the same tree with --rootfs, nothing differs, in each
// case of where the user database is found.
func TestNFSv4DefaultOwnersMinbase(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "ganesha.nfsd")
	passwd := "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\nmail:x:8:8:mail:/var/mail:/usr/sbin/nologin\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nlocal:x:4321:4321::/home/local:/bin/bash\n"
	group := "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\nmail:x:8:\nshadow:x:42:\nutmp:x:43:\nstaff:x:50:\nusers:x:100:\nnogroup:x:65534:\nlocal:x:4321:\n"
	// Each owner: by a name the host has (sent as a name) or an id
	// neither has (sent as a number, 5555).
	owned := []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{"etc/gshadow", 0o640, 0, 42},
		{"var/log/wtmp", 0o664, 0, 43},
		{"var/log/syslog", 0o640, 0, 4},
		{"var/mail/local", 0o660, 4321, 8},
		{"var/spool/mail", 0o660, 8, 8},
		{"usr/local/share/staffed", 0o664, 0, 50},
		{"usr/sbin/daemonic", 0o755, 1, 1},
		{"dev/ttyish", 0o620, 0, 5},
		{"var/cache/apt/partial", 0o700, 42, 65534},
		{"home/local/notes", 0o600, 4321, 4321},
		{"srv/orphan", 0o644, 5555, 5555},
	}
	tests := []struct {
		name string
		// export: the database files the export has; the rest is only
		// in the --rootfs tree.
		export []string
	}{
		{"the export's own database", []string{"etc/passwd", "etc/group"}},
		{"the --rootfs tree's when the export has none", nil},
		{"the --rootfs tree's group when the export has only passwd", []string{"etc/passwd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixtureRoot(t)
			local := filepath.Join(t.TempDir(), "local")
			write := func(top, p, data string, mode os.FileMode, uid, gid int) {
				full := filepath.Join(top, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte(data), mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(full, mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(full, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range owned {
				write(root, f.path, "x", f.mode, f.uid, f.gid)
			}
			db := map[string]string{"etc/passwd": passwd, "etc/group": group}
			for _, p := range tt.export {
				write(root, p, db[p], 0o644, 0, 0)
			}
			// The --rootfs tree: the export's files, and the database.
			if err := exec.Command("cp", "-a", root, local).Run(); err != nil {
				t.Fatal(err)
			}
			for p, data := range db {
				write(local, p, data, 0o644, 0, 0)
			}
			s, err := ganesha.Start(context.Background(), []ganesha.Export{{ID: 1, Path: root, Pseudo: "/node"}}, ganesha.Options{V4Only: true, NamedOwners: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Stop)
			rep, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: nfsclient.Target{Host: "127.0.0.1", NFSPort: s.NFSPort, Path: "/node", Version: 4}, Rootfs: local, Timeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range rep.Differences {
				if _, only := db[strings.TrimPrefix(d.Path, "/")]; only && d.Kind == "missing" {
					continue // the database files this export lacks
				}
				t.Errorf("difference on an identical tree: %+v", d)
			}
			if st := statuses(rep)["owner-names"]; st != "PASS" {
				t.Errorf("owner-names %q, want PASS (the server sent names: %+v)", st, rep.Checks)
			}
		})
	}
}
