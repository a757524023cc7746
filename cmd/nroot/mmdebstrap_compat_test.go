//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"nroot/e2e/testenv"
)

// nrootStdin is nroot with stdin given and stdout kept as bytes.
func nrootStdin(t *testing.T, stdin string, args ...string) (stdout []byte, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(nrootBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("nroot %v: %v", args, err)
	}
	return o.Bytes(), e.String(), code
}

// writeFile writes a file in a new directory and returns its path.
func writeFile(t *testing.T, name, data string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBootstrapEntryPoint: nroot bootstrap answers the way a script
// written for mmdebstrap expects, and refuses what it cannot do in one
// line with exit 64, before any work and without the archive.
func TestBootstrapEntryPoint(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	os.MkdirAll(filepath.Join(full, "etc"), 0o755)
	noLzop := t.TempDir() // a PATH without lzop
	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stdout string // a prefix of standard output
		says   string // in stderr
	}{
		{"--version", nil, []string{"bootstrap", "--version"}, 0, "nroot bootstrap (mmdebstrap-compatible) ", ""},
		{"--vers, a unique prefix", nil, []string{"bootstrap", "--vers"}, 0, "nroot bootstrap (mmdebstrap-compatible) ", ""},
		{"--help", nil, []string{"bootstrap", "--help"}, 0, "Bootstrap resolves", ""},
		{"-h", nil, []string{"bootstrap", "-h"}, 0, "Bootstrap resolves", ""},
		{"ambiguous prefix names the candidates", nil, []string{"bootstrap", "--c=main", "bookworm", full}, 64, "", "--cache-dir, --chrooted-customize-hook"},
		{"ambiguous --ver", nil, []string{"bootstrap", "--ver", "bookworm", full}, 64, "", "--verbose, --version"},
		{"unknown option", nil, []string{"bootstrap", "--nosuchoption", "bookworm", full}, 64, "", "--nosuchoption"},
		{"a format mmdebstrap lacks", nil, []string{"bootstrap", "--format=ext5", "bookworm", full}, 64, "", "--format"},
		{"an ext2 TARGET is no directory", nil, []string{"bootstrap", "bookworm", filepath.Join(dir, "node.ext2")}, 64, "", "mke2fs"},
		{"directory to stdout", nil, []string{"bootstrap", "--format=directory", "bookworm", "-"}, 64, "", "standard output"},
		{"--json with stdout", nil, []string{"bootstrap", "--json", "bookworm", "-"}, 64, "", "--json and TARGET -"},
		{"a non-empty target directory", nil, []string{"bootstrap", "bookworm", full}, 1, "", "already exists"},
		{"an apt pattern nroot cannot follow", nil, []string{"bootstrap", "--include=~prequired|~pimportant", "bookworm", filepath.Join(dir, "p")}, 64, "", "--include"},
		{"a pattern cut short", nil, []string{"bootstrap", "--include=?or(?exact-name(a0)", "bookworm", filepath.Join(dir, "p")}, 64, "", "--include"},
		{"an empty SUITE without sources", nil, []string{"bootstrap", "", filepath.Join(dir, "p")}, 64, "", "SUITE"},
		{"an empty SUITE with a bare URL", nil, []string{"bootstrap", "", filepath.Join(dir, "p"), "http://mirror.invalid/debian"}, 64, "", "SUITE"},
		{"a sources.list with trusted=yes", nil, []string{"bootstrap", "", filepath.Join(dir, "p"), writeFile(t, "trusted.list", "deb [trusted=yes] http://mirror.invalid/debian bookworm main\n")}, 64, "", "trusted=yes"},
		{"a sources file in no format", nil, []string{"bootstrap", "bookworm", filepath.Join(dir, "p"), writeFile(t, "junk", "hello\n")}, 64, "", "format"},
		{"no arguments and nothing on stdin", nil, []string{"bootstrap"}, 64, "", "standard input"},
		{"a --skip nroot has no step for", nil, []string{"bootstrap", "--skip=check/empty", "bookworm", filepath.Join(dir, "p")}, 64, "", "--skip=check/empty"},
		{"--dry-run refuses what the build would", nil, []string{"bootstrap", "--dry-run", `--aptopt=APT::Install-Recommends "true"`, "bookworm", filepath.Join(dir, "p")}, 64, "", "--aptopt"},
		{"an apt proxy nroot would not use", nil, []string{"bootstrap", `--aptopt=Acquire::http::Proxy "http://proxy.invalid:3128"`, "bookworm", filepath.Join(dir, "p")}, 64, "", "http_proxy"},
		{"--from-lock without TARGET", nil, []string{"bootstrap", "--from-lock", filepath.Join(dir, "x.lock")}, 64, "", "give TARGET"},
		{"a compressor not installed", []string{"PATH=" + noLzop}, []string{"bootstrap", "bookworm", filepath.Join(dir, "x.tar.lzo")}, 1, "", "lzop, which is not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := nroot(t, tt.env, tt.args...)
			if code != tt.code || !strings.HasPrefix(stdout, tt.stdout) || !strings.Contains(stderr, tt.says) {
				t.Fatalf("exit %d, want %d; stdout %q, want %q; stderr %q, want %q", code, tt.code, stdout, tt.stdout, stderr, tt.says)
			}
			if code != 0 && len(strings.Split(strings.TrimSpace(stderr), "\n")) != 1 {
				t.Errorf("an error takes one line:\n%s", stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "x.tar.lzo")); err == nil {
				t.Errorf("a refused TARGET was written")
			}
		})
	}
}

// TestBootstrapTargets builds base-files (--variant=extract, a few
// seconds each) against the real archive into each kind of TARGET an
// mmdebstrap script passes: an empty directory, a mount point holding
// lost+found, /dev/null, tarballs named for their compressor, and "-".
// The builds also pass mmdebstrap's spellings: --format=directory,
// --comp (a prefix), --resolve-deps and the other no-ops, --debug, -s,
// --dry-run and --simulate.
func TestBootstrapTargets(t *testing.T) {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	for _, c := range []string{"xz", "lz4"} {
		testenv.Command(t, c)
	}
	dir := t.TempDir()
	base := []string{"bootstrap", "--variant=extract", "--include=base-files", "--comp=main", "--resolve-deps"}
	build := func(t *testing.T, target string, extra ...string) (stdout []byte, stderr string) {
		t.Helper()
		args := append(append(append([]string{}, base...), extra...), "bookworm", target, mirror)
		stdout, stderr, code := nrootStdin(t, "", args...)
		if code != 0 {
			t.Fatalf("nroot %v: exit %d\n%s", args, code, stderr)
		}
		return stdout, stderr
	}
	hasImage := func(t *testing.T, root string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(root, "usr/lib/os-release")); err != nil {
			t.Errorf("no image in %s: %v", root, err)
		}
		left, _ := filepath.Glob(filepath.Join(root, ".nroot-*"))
		if len(left) > 0 {
			t.Errorf("build directory left behind: %v", left)
		}
	}

	t.Run("empty directory, --format=directory, --debug", func(t *testing.T) {
		target := filepath.Join(dir, "empty")
		os.Mkdir(target, 0o700)
		_, stderr := build(t, target, "--format=directory", "--debug")
		hasImage(t, target)
		if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("target mode %v, %v; want 0755", fi.Mode(), err)
		}
		if !strings.Contains(stderr, "--resolve-deps is a no-op") {
			t.Errorf("the no-op option was not said to be one:\n%s", stderr)
		}
	})
	t.Run("extract runs no maintainer script", func(t *testing.T) {
		// dash brings /bin/sh and libc6, whose preinst fails without sed:
		// mmdebstrap's extract only unpacks, and so must nroot.
		target := filepath.Join(dir, "extract")
		stdout, stderr := build(t, target, "--include=dash")
		hasImage(t, target)
		if _, err := os.Lstat(filepath.Join(target, "bin/sh")); err != nil {
			t.Errorf("no /bin/sh: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(target, "var/lib/dpkg/status")); err != nil || !strings.Contains(string(b), "Package: libc6\n") || strings.Contains(string(b), "installed\n") {
			t.Errorf("status should list libc6 unpacked, nothing installed: %v\n%s", err, b)
		}
		if strings.Contains(string(stdout)+stderr, "configure") {
			t.Errorf("extract should say nothing of configuring:\n%s%s", stdout, stderr)
		}
	})
	t.Run("directory holding lost+found", func(t *testing.T) {
		target := filepath.Join(dir, "mnt")
		os.MkdirAll(filepath.Join(target, "lost+found"), 0o700)
		os.WriteFile(filepath.Join(target, "lost+found", "#12"), []byte("kept"), 0o600)
		// -s is silent: debootstrap's no-op options say nothing either.
		if _, stderr := build(t, target, "-s", "--merged-usr", "--no-merged-usr", "--force-check-gpg"); stderr != "" {
			t.Errorf("-s printed on stderr:\n%s", stderr)
		}
		hasImage(t, target)
		if b, err := os.ReadFile(filepath.Join(target, "lost+found", "#12")); err != nil || string(b) != "kept" {
			t.Errorf("lost+found not kept: %q %v", b, err)
		}
	})
	t.Run("/dev/null keeps nothing but runs the hooks", func(t *testing.T) {
		marker := filepath.Join(dir, "hook-ran")
		before, _ := filepath.Glob(filepath.Join(os.TempDir(), "nroot-bootstrap-*"))
		logfile := filepath.Join(dir, "build.log")
		stdout, _ := build(t, "/dev/null", `--extract-hook=test -f "$1/usr/lib/os-release" && touch `+marker, "--logfile="+logfile)
		if b, err := os.ReadFile(logfile); err != nil || !strings.Contains(string(b), "[unpack]") {
			t.Errorf("--logfile has no stage lines: %q %v", b, err)
		}
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("the extract hook did not run: %v", err)
		}
		if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			t.Fatalf("/dev/null is no longer a device: %v %v", fi.Mode(), err)
		}
		after, _ := filepath.Glob(filepath.Join(os.TempDir(), "nroot-bootstrap-*"))
		if len(after) > len(before) {
			t.Errorf("build directory left behind: %v", after)
		}
		if !strings.Contains(string(stdout), "null") {
			t.Errorf("stdout %q", stdout)
		}
	})
	for _, tc := range []struct{ name, magic string }{
		{"node.tar.xz", "\xfd7zXZ\x00"}, {"node.tar.lz4", "\x04\x22\x4d\x18"}, {"node.tgz", "\x1f\x8b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XZ_OPT", "-0") // xz's fastest level: the test is of the format, not the ratio
			target := filepath.Join(dir, tc.name)
			// An existing tarball is replaced, as mmdebstrap overwrites it.
			os.WriteFile(target, []byte("an older build"), 0o644)
			build(t, target)
			fi, err := os.Stat(target)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("%s is no file: %v", tc.name, err)
			}
			b, _ := os.ReadFile(target)
			if !bytes.HasPrefix(b, []byte(tc.magic)) {
				t.Errorf("%s starts %q, not with its compressor's magic", tc.name, b[:min(8, len(b))])
			}
		})
	}
	t.Run("- writes the tarball to stdout", func(t *testing.T) {
		stdout, stderr := build(t, "-")
		tr := tar.NewReader(bytes.NewReader(stdout))
		var found bool
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("stdout is no tarball (%v); stderr:\n%s", err, stderr)
			}
			found = found || h.Name == "./usr/lib/os-release"
		}
		if !found {
			t.Errorf("no ./usr/lib/os-release in the tarball")
		}
		if !strings.Contains(stderr, "-: bookworm extract") {
			t.Errorf("the summary should go to stderr:\n%s", stderr)
		}
		if _, err := os.Stat("-"); err == nil {
			t.Errorf("a file named - was made")
		}
	})
	t.Run("- read partly leaves nothing behind", func(t *testing.T) {
		before, _ := filepath.Glob(filepath.Join(os.TempDir(), "nroot-bootstrap-*"))
		cmd := exec.Command(nrootBin, append(append([]string{}, base...), "bookworm", "-", mirror)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		io.ReadFull(out, make([]byte, 512))
		out.Close() // as | head -c 512 does
		if err := cmd.Wait(); err == nil {
			t.Error("exit 0 with the tarball cut short")
		}
		after, _ := filepath.Glob(filepath.Join(os.TempDir(), "nroot-bootstrap-*"))
		if len(after) > len(before) {
			t.Errorf("build directory left behind: %v", after)
		}
	})
	t.Run("- into /dev/null is the null format", func(t *testing.T) {
		cmd := exec.Command(nrootBin, append(append([]string{}, base...), "bookworm", "-", mirror)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr // stdout: /dev/null
		if err := cmd.Run(); err != nil || !regexp.MustCompile(`-: bookworm extract, \d+ packages, null`).MatchString(stderr.String()) {
			t.Errorf("%v\n%s", err, stderr.String())
		}
	})
	for _, flag := range []string{"--dry-run", "--simulate"} {
		t.Run(flag+" writes nothing", func(t *testing.T) {
			target := filepath.Join(dir, "dry")
			stdout, _ := build(t, target, flag, "--customize-hook=touch "+filepath.Join(dir, "dry-hook"))
			if !strings.Contains(string(stdout), "dry run: ") || !strings.Contains(string(stdout), "bookworm extract") {
				t.Errorf("stdout %q", stdout)
			}
			for _, p := range []string{target, filepath.Join(dir, "dry-hook")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was made in a dry run", p)
				}
			}
		})
	}
}

// TestBootstrapSources: the sources come from a sources.list file given
// as MIRROR (one-line or deb822), or from stdin (MIRROR -), with an empty
// SUITE taken from them, and --include takes apt's exact-name patterns;
// checked against the real archive, one build and two dry runs.
func TestBootstrapSources(t *testing.T) {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	dir := t.TempDir()
	deb822 := writeFile(t, "debian.sources", "# mine\nTypes: deb\nURIs: "+mirror+"\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
	oneLine := "deb [arch=" + "amd64] " + mirror + " bookworm main\n"
	list := writeFile(t, "sources.list", oneLine)
	pattern := "--include=?or(?exact-name(base-files),?exact-name(netbase))"
	type plan struct {
		Suite    string `json:"suite"`
		Codename string `json:"codename"`
		Packages []struct {
			Name string `json:"name"`
		} `json:"packages"`
	}
	check := func(t *testing.T, out []byte, want ...string) {
		t.Helper()
		var doc struct {
			plan
			Plan *plan `json:"plan"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		p := doc.plan
		if doc.Plan != nil {
			p = *doc.Plan
		}
		if p.Codename != "bookworm" {
			t.Errorf("codename %q, want bookworm", p.Codename)
		}
		names := map[string]bool{}
		for _, pk := range p.Packages {
			names[pk.Name] = true
		}
		for _, w := range want {
			if !names[w] {
				t.Errorf("no %s in the plan: %s", w, out)
			}
		}
	}
	t.Run("deb822 file, empty SUITE, ?or pattern", func(t *testing.T) {
		target := filepath.Join(dir, "node")
		out, stderr, code := nrootStdin(t, "", "bootstrap", "--json", "--variant=extract", pattern, "", target, deb822)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		check(t, out, "base-files", "netbase")
		if _, err := os.Stat(filepath.Join(target, "usr/lib/os-release")); err != nil {
			t.Error(err)
		}
	})
	t.Run("one-line file", func(t *testing.T) {
		out, stderr, code := nrootStdin(t, "", "bootstrap", "--dry-run", "--json", "--variant=extract", "--include=?exact-name(netbase)", "bookworm", filepath.Join(dir, "x"), list)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		check(t, out, "netbase")
	})
	t.Run("--variant=-", func(t *testing.T) {
		out, stderr, code := nrootStdin(t, "", "bootstrap", "--dry-run", "--variant=-", "bookworm", filepath.Join(dir, "x"), list)
		if code != 0 || !strings.Contains(string(out), "bookworm debootstrap") {
			t.Fatalf("exit %d, stdout %q\n%s", code, out, stderr)
		}
	})
	t.Run("no SUITE, no TARGET: sources on stdin, tarball on stdout", func(t *testing.T) {
		out, stderr, code := nrootStdin(t, oneLine, "bootstrap", "--variant=extract", "--include=netbase")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		tr := tar.NewReader(bytes.NewReader(out))
		found := false
		for {
			h, err := tr.Next()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("stdout is no tarball: %v", err)
				}
				break
			}
			found = found || h.Name == "./etc/services.dpkg-new" || h.Name == "./etc/services"
		}
		if !found || !strings.Contains(stderr, "-: bookworm extract") {
			t.Errorf("netbase's etc/services in the tarball: %v; stderr:\n%s", found, stderr)
		}
	})
}

// TestBootstrapOptions: --dpkgopt path-include of one file under an
// excluded directory keeps the file and makes its parents, as dpkg does;
// --keyring takes a directory of keyrings, as mmdebstrap passes one to
// apt, and one without the archive's key fails the build. Real archive.
func TestBootstrapOptions(t *testing.T) {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	dir := t.TempDir()
	debianKeys, ubuntuKeys := filepath.Join(dir, "debian.d"), filepath.Join(dir, "ubuntu.d")
	for name, d := range map[string]string{"debian": debianKeys, "ubuntu": ubuntuKeys} {
		os.Mkdir(d, 0o755)
		if _, stderr, code := nroot(t, nil, "keyring", "export", name, "-o", filepath.Join(d, name+"-archive-keyring.gpg")); code != 0 {
			t.Fatalf("keyring export %s: %s", name, stderr)
		}
	}
	os.WriteFile(filepath.Join(debianKeys, "README"), []byte("not a keyring"), 0o644)

	target := filepath.Join(dir, "node")
	_, stderr, code := nrootStdin(t, "", "bootstrap", "--variant=extract", "--include=dpkg", "--keyring", debianKeys,
		"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-include=/usr/share/doc/dpkg/copyright", "bookworm", target, mirror)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	docs, _ := filepath.Glob(filepath.Join(target, "usr/share/doc/*"))
	var names []string
	for _, d := range docs {
		names = append(names, filepath.Base(d))
	}
	if len(names) != 1 || names[0] != "dpkg" {
		t.Errorf("usr/share/doc holds %q, want dpkg alone", names)
	}
	kept, _ := filepath.Glob(filepath.Join(target, "usr/share/doc/dpkg/*"))
	if len(kept) != 1 || filepath.Base(kept[0]) != "copyright" {
		t.Errorf("usr/share/doc/dpkg holds %q, want copyright alone", kept)
	}

	_, stderr, code = nrootStdin(t, "", "bootstrap", "--variant=extract", "--include=base-files", "--keyring", ubuntuKeys, "bookworm", filepath.Join(dir, "other"), mirror)
	if code == 0 || !strings.Contains(stderr, "key") {
		t.Errorf("a keyring directory without Debian's key: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); err == nil {
		t.Error("a failed build left its target")
	}
}

// TestWordsValue: --components and --architectures split as mmdebstrap
// splits them, at commas and whitespace, the first use replacing the
// default.
func TestWordsValue(t *testing.T) {
	tests := []struct {
		sets []string
		want string
	}{
		{nil, "[main]"},
		{[]string{"main contrib"}, "[main,contrib]"},
		{[]string{"main,contrib", " non-free\t"}, "[main,contrib,non-free]"},
		{[]string{"contrib"}, "[contrib]"},
	}
	for _, tt := range tests {
		var list []string
		v := newWordsValue(&list, []string{"main"})
		for _, s := range tt.sets {
			v.Set(s)
		}
		if v.String() != tt.want {
			t.Errorf("%q: %s, want %s", tt.sets, v.String(), tt.want)
		}
	}
}
