package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFormatFor: TARGET's name says the format as mmdebstrap reads it,
// and --format agrees with it or is refused.
func TestFormatFor(t *testing.T) {
	tests := []struct {
		target, asked, want string
		fails               bool
	}{
		{"./node", "auto", "dir", false},
		{"./node", "directory", "dir", false},
		{"node.tar", "", "tar", false},
		{"node.tar.xz", "auto", "tar.xz", false},
		{"node.txz", "auto", "tar.xz", false},
		{"node.tar.lz4", "auto", "tar.lz4", false},
		{"node.tar.bz2", "auto", "tar.bz2", false},
		{"node.tgz", "auto", "tar.gz", false},
		{"node.tar.zst", "auto", "tar.zst", false},
		{"node.tar.xz", "tar", "tar.xz", false},
		{"node.tar.xz", "tar.gz", "", true},
		{"node.squashfs", "auto", "squashfs", false},
		{"/dev/null", "auto", "null", false},
		{"./node", "null", "null", false},
		{"-", "auto", "tar", false},
		{"-", "tar.zst", "tar.zst", false},
		{"-", "directory", "", true},
		{"-", "squashfs", "", true},
		{"./node", "ext5", "", true},
		{"node.ext2", "auto", "", true},
		{"./node", "ext2", "", true},
	}
	for _, tt := range tests {
		got, err := FormatFor(tt.target, tt.asked)
		if (err != nil) != tt.fails || got != tt.want {
			t.Errorf("FormatFor(%q, %q) = %q, %v; want %q (fails %v)", tt.target, tt.asked, got, err, tt.want, tt.fails)
		}
	}
}

// TestEmptyTarget: an empty directory and a fresh filesystem's mount
// point (lost+found alone) may be built into; anything else may not.
func TestEmptyTarget(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  bool
	}{
		{"empty", nil, true},
		{"lost+found", []string{"lost+found/"}, true},
		{"lost+found as a file", []string{"lost+found"}, false},
		{"lost+found and more", []string{"lost+found/", "etc/"}, false},
		{"a file", []string{"x"}, false},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		for _, f := range tt.files {
			p := filepath.Join(dir, f)
			if f[len(f)-1] == '/' {
				os.Mkdir(p, 0o700)
			} else {
				os.WriteFile(p, nil, 0o600)
			}
		}
		if got := emptyTarget(dir); got != tt.want {
			t.Errorf("%s: emptyTarget = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestMoveUp: a tree built inside the target moves up into it, keeping
// the filesystem's lost+found; when a name is taken, what was moved goes
// back and the target is as it was.
func TestMoveUp(t *testing.T) {
	target := t.TempDir()
	os.Mkdir(filepath.Join(target, "lost+found"), 0o700)
	build := filepath.Join(target, ".nroot-1")
	for _, d := range []string{"etc", "usr", "lost+found"} {
		os.MkdirAll(filepath.Join(build, d), 0o755)
	}
	os.Chmod(build, 0o755)
	if err := moveUp(build, target); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(target)
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	if len(got) != 3 || got[0] != "etc" || got[1] != "lost+found" || got[2] != "usr" {
		t.Errorf("target holds %q", got)
	}

	target = t.TempDir()
	os.WriteFile(filepath.Join(target, "usr"), nil, 0o644) // taken
	build = filepath.Join(target, ".nroot-2")
	for _, d := range []string{"etc", "usr"} {
		os.MkdirAll(filepath.Join(build, d), 0o755)
	}
	if err := moveUp(build, target); err == nil {
		t.Fatal("moved over a taken name")
	}
	if _, err := os.Stat(filepath.Join(target, "etc")); err == nil {
		t.Error("etc was left in the target after the failure")
	}
	if _, err := os.Stat(filepath.Join(build, "etc")); err != nil {
		t.Errorf("etc did not go back: %v", err)
	}
}
