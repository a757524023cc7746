package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nroot/e2e/testenv"
)

// TestRootlessMatchesRoot builds a bookworm minbase tarball as an
// unprivileged user made for the test (nroot's default mode without
// root: a user namespace over the user's subordinate IDs), then the same
// lock as root, and expects the same entries with the same types,
// owners, modes, link targets and device numbers; only mtimes and
// contents may differ. A user without subordinate IDs gets one line
// naming /etc/subuid and no target.
func TestRootlessMatchesRoot(t *testing.T) {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	testenv.Command(t, "newuidmap")
	testenv.Command(t, "newgidmap")
	useradd, usermod, userdel := testenv.Command(t, "useradd"), testenv.Command(t, "usermod"), testenv.Command(t, "userdel")

	base := t.TempDir()
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // the user must reach the binary and its home
	}
	bin := filepath.Join(base, "nroot")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	name := fmt.Sprintf("nroottest%d", os.Getpid()%100000)
	home := filepath.Join(base, "home")
	if out, err := exec.Command(useradd, "--create-home", "--home-dir", home, "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(userdel, "--force", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// useradd gives a new user subordinate IDs when login.defs asks for
	// them (Debian's default); otherwise give it a free range.
	if !hasSubIDs(t, name) {
		start := freeSubIDs(t)
		r := fmt.Sprintf("%d-%d", start, start+65535)
		if out, err := exec.Command(usermod, "--add-subuids", r, "--add-subgids", r, name).CombinedOutput(); err != nil {
			t.Fatalf("usermod: %v\n%s", err, out)
		}
	}
	out := filepath.Join(base, "out")
	os.Mkdir(out, 0o755)
	os.Chown(out, uid, gid)

	run := func(asUser bool, args ...string) (string, time.Duration, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = out
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SOURCE_DATE_EPOCH=1700000000"}
		if asUser {
			cmd.Env = append(cmd.Env, "HOME="+home)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		} else {
			cmd.Env = append(cmd.Env, "HOME="+os.Getenv("HOME"))
		}
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		t0 := time.Now()
		err := cmd.Run()
		return b.String(), time.Since(t0), err
	}

	rootless := filepath.Join(out, "rootless.tar")
	o, took, err := run(true, "--quiet", "bootstrap", "--variant=minbase", "--lock", filepath.Join(out, "lock"), "bookworm", rootless, mirror)
	if err != nil {
		t.Fatalf("rootless bootstrap: %v\n%s", err, o)
	}
	t.Logf("rootless bootstrap: %.1f s", took.Seconds())
	rootTar := filepath.Join(base, "root.tar")
	o, took, err = run(false, "--quiet", "bootstrap", "--mode=root", "--from-lock", filepath.Join(out, "lock"), rootTar)
	if err != nil {
		t.Fatalf("root bootstrap: %v\n%s", err, o)
	}
	t.Logf("root bootstrap from the same lock: %.1f s", took.Seconds())

	a, b := tarEntries(t, rootless), tarEntries(t, rootTar)
	if len(a) < 1000 {
		t.Fatalf("the rootless tarball has %d entries", len(a))
	}
	var diffs []string
	for n, ea := range a {
		if eb, ok := b[n]; !ok {
			diffs = append(diffs, "only rootless: "+n)
		} else if ea != eb {
			diffs = append(diffs, fmt.Sprintf("%s: rootless %+v, root %+v", n, ea, eb))
		}
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			diffs = append(diffs, "only as root: "+n)
		}
	}
	slices.Sort(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
	// The owners are the image's, not the user's: a group of the image
	// (shadow, 42) and a device node prove the namespace did its work.
	if e := a["./usr/bin/chage"]; e.gid != 42 || e.mode&0o2000 == 0 {
		t.Errorf("usr/bin/chage: %+v, want setgid group shadow (42)", e)
	}
	if e := a["./dev/null"]; e.typ != tar.TypeChar || e.major != 1 || e.minor != 3 {
		t.Errorf("dev/null: %+v, want character device 1,3", e)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}

	// Without subordinate IDs: one line that says what to do, no target.
	if o, err := exec.Command(usermod, "--del-subuids", "1-4294967294", name).CombinedOutput(); err != nil {
		t.Fatalf("usermod --del-subuids: %v\n%s", err, o)
	}
	o, _, err = run(true, "--quiet", "bootstrap", "--variant=minbase", "bookworm", "none.tar", mirror)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || strings.Count(strings.TrimSpace(o), "\n") != 0 || !strings.Contains(o, "/etc/subuid") {
		t.Errorf("without subordinate IDs: %v, want one line naming /etc/subuid:\n%s", err, o)
	}
	if _, err := os.Stat(filepath.Join(out, "none.tar")); err == nil {
		t.Error("without subordinate IDs: none.tar was written")
	}
}

type tarEntry struct {
	typ          byte
	mode         int64
	uid, gid     int
	link         string
	major, minor int64
}

func tarEntries(t *testing.T, file string) map[string]tarEntry {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	m := map[string]tarEntry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		m[h.Name] = tarEntry{h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, h.Devmajor, h.Devminor}
	}
}

func hasSubIDs(t *testing.T, name string) bool {
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, _ := os.ReadFile(f)
		if !strings.Contains("\n"+string(b), "\n"+name+":") {
			return false
		}
	}
	return true
}

// freeSubIDs is the start of a range of 65536 IDs no user has yet.
func freeSubIDs(t *testing.T) int {
	end := 100000
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			p := strings.Split(l, ":")
			if len(p) != 3 {
				continue
			}
			s, err1 := strconv.Atoi(p[1])
			c, err2 := strconv.Atoi(p[2])
			if err1 == nil && err2 == nil && s+c > end {
				end = s + c
			}
		}
	}
	return end
}
