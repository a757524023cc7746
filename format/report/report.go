// Package report holds the vocabulary nroot's JSON documents share, so
// that a field means one thing whichever command wrote it.
package report

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Mode is a file's permission bits with setuid, setgid and sticky
// (never the type, which is a separate "type" field). It is written as
// four octal digits, as chmod takes it: "0755", "4755".
type Mode uint32

// MarshalJSON writes the mode as "0755".
func (m Mode) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%04o", uint32(m)&0o7777))
}

// UnmarshalJSON reads "0755".
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("mode %q: want four octal digits such as \"0755\"", s)
	}
	*m = Mode(v)
	return nil
}

// Status is the outcome of a check.
type Status string

// The outcomes: a warning is reported but fails nothing.
const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Check is one named check and its outcome, the one shape every nroot
// command reports checks in (initrd verify, node check, check).
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"` // what to do about a failure
}

// Result is a check that passed or failed.
func Result(name string, pass bool, detail string) Check {
	s := Fail
	if pass {
		s = Pass
	}
	return Check{Name: name, Status: s, Detail: detail}
}

// Passed reports whether the check did not fail.
func (c Check) Passed() bool { return c.Status != Fail }

// Failed counts the checks that failed.
func Failed(checks []Check) int {
	n := 0
	for _, c := range checks {
		if !c.Passed() {
			n++
		}
	}
	return n
}

// File is what nroot compares of one path: of an initramfs entry, of a
// file in an image, of a file on an NFS export.
type File struct {
	Type     string `json:"type"` // file, dir, symlink, char, block, fifo, socket
	Mode     Mode   `json:"mode"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256,omitempty"`
	Linkname string `json:"linkname,omitempty"`
	RDev     string `json:"rdev,omitempty"` // "major:minor" of a device
}

// Difference is one path that differs between two trees: Old is the
// reference (the first image, the image an export should serve), New
// what was found. Kind is added or removed (missing or extra when an
// export is compared with its image) or changed, with Fields naming what
// changed.
type Difference struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Fields string `json:"fields,omitempty"`
	Old    *File  `json:"old,omitempty"`
	New    *File  `json:"new,omitempty"`
}

// Changed names what differs from f in g, comma-separated in a fixed
// order (type, mode, owner, size, content, target, rdev), "" when
// nothing does.
func (f File) Changed(g File) string {
	var out []string
	for _, c := range []struct {
		name string
		diff bool
	}{
		{"type", f.Type != g.Type},
		{"mode", f.Mode != g.Mode},
		{"owner", f.UID != g.UID || f.GID != g.GID},
		{"size", f.Size != g.Size},
		{"content", f.SHA256 != g.SHA256},
		{"target", f.Linkname != g.Linkname},
		{"rdev", f.RDev != g.RDev},
	} {
		if c.diff {
			out = append(out, c.name)
		}
	}
	return strings.Join(out, ",")
}
