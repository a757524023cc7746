package nspawn

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
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
			saved.symlink, err = r.Readlink(rel)
		} else {
			// A regular file of resolver size only: the image may
			// have left a FIFO or a device there.
			saved.data, err = r.ReadFile(rel, maxResolvConf)
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
		// Leave what the command wrote in place of ours: anything but
		// our own regular file, which is read no further than its size.
		if cur, err := r.ReadFile(rel, int64(len(marker))); err == nil && !bytes.Equal(cur, marker) {
			return
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
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

// maxResolvConf bounds the image's resolv.conf: resolvers are a few lines.
const maxResolvConf = 1 << 20

// ResolvConfState describes /etc/resolv.conf in a root, for tests and
// checks: "file: CONTENT", "symlink -> TARGET", "special" or "absent".
func ResolvConfState(root string) string {
	r, err := fsroot.Open(root)
	if err != nil {
		return "absent"
	}
	defer r.Close()
	const rel = "etc/resolv.conf"
	st, err := r.Lstat(rel)
	switch {
	case err != nil:
		return "absent"
	case st.Mode&0o170000 == 0o120000:
		t, _ := r.Readlink(rel)
		return "symlink -> " + t
	}
	b, err := r.ReadFile(rel, maxResolvConf)
	if err != nil {
		return "special"
	}
	return "file: " + strings.TrimSpace(string(b))
}
