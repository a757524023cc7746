package nspawn

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"nroot/internal/fsroot"
)

// hostResolvConf returns the host's resolver configuration. Where the
// host runs systemd-resolved, /etc/resolv.conf names the 127.0.0.53 stub,
// which the image cannot reach in every setup; the upstream servers are
// in resolved's own resolv.conf.
func hostResolvConf() ([]byte, error) {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err == nil && bytes.Contains(b, []byte("127.0.0.53")) {
		if up, err := os.ReadFile("/run/systemd/resolve/resolv.conf"); err == nil {
			return up, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nspawn: no DNS for the image: host /etc/resolv.conf: %w", err)
	}
	return b, nil
}

// savedResolv is the image's own /etc/resolv.conf: a file, a symlink
// (Ubuntu's to the resolved stub, often dangling), or nothing.
type savedResolv struct {
	exists  bool
	symlink string
	data    []byte
	mode    uint32
	uid     int
	gid     int
}

// provideDNS puts the host's resolvers at the image's /etc/resolv.conf
// and returns the function that restores the image's own, whatever it
// was. If the command replaced the file itself (installing
// systemd-resolved, say), that change is kept.
func provideDNS(root string) (func(), error) {
	host, err := hostResolvConf()
	if err != nil {
		return nil, err
	}
	r, err := fsroot.Open(root)
	if err != nil {
		return nil, err
	}
	const rel = "etc/resolv.conf"
	var saved savedResolv
	if st, err := r.Lstat(rel); err == nil {
		saved.exists, saved.mode, saved.uid, saved.gid = true, st.Mode&0o7777, int(st.Uid), int(st.Gid)
		if st.Mode&0o170000 == 0o120000 {
			saved.symlink, err = os.Readlink(filepath.Join(root, rel))
		} else {
			var f *os.File
			if f, err = r.Open(rel); err == nil {
				saved.data, err = readAll(f)
			}
		}
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("nspawn: saving %s: %w", rel, err)
		}
	}
	if err := r.MkdirAll("etc", 0o755); err != nil {
		r.Close()
		return nil, err
	}
	marker := append([]byte("# nroot: the build host's resolvers, for the duration of a command\n"), host...)
	if err := r.WriteFile(rel, bytes.NewReader(marker), int64(len(marker)), fsroot.Meta{Mode: 0o644}); err != nil {
		r.Close()
		return nil, fmt.Errorf("nspawn: providing DNS: %w", err)
	}
	return func() {
		defer r.Close()
		// Leave what the command wrote in place of ours.
		if f, err := r.Open(rel); err == nil {
			cur, _ := readAll(f)
			if !bytes.Equal(cur, marker) {
				return
			}
		}
		if st, err := r.Lstat(rel); err != nil || st.Mode&0o170000 == 0o120000 {
			return
		}
		switch {
		case !saved.exists:
			r.Remove(rel)
		case saved.symlink != "":
			r.Symlink(saved.symlink, rel, fsroot.Meta{Chown: true, UID: saved.uid, GID: saved.gid})
		default:
			r.WriteFile(rel, bytes.NewReader(saved.data), int64(len(saved.data)), fsroot.Meta{Mode: saved.mode, Chown: os.Geteuid() == 0, UID: saved.uid, GID: saved.gid})
		}
	}, nil
}

func readAll(f *os.File) ([]byte, error) {
	defer f.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
}

// ResolvConfState describes /etc/resolv.conf in a root, for tests and
// checks: "file", "symlink -> TARGET" or "absent".
func ResolvConfState(root string) string {
	p := filepath.Join(root, "etc/resolv.conf")
	fi, err := os.Lstat(p)
	switch {
	case err != nil:
		return "absent"
	case fi.Mode()&os.ModeSymlink != 0:
		t, _ := os.Readlink(p)
		return "symlink -> " + t
	}
	b, _ := os.ReadFile(p)
	return "file: " + strings.TrimSpace(string(b))
}
