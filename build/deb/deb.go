package deb

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"nroot/format/control"
	"nroot/internal/decompress"
)

// Control is what a package's control archive holds.
type Control struct {
	// Fields is the paragraph of DEBIAN/control.
	Fields *control.Paragraph
	// Files holds the other control members by name: preinst, postinst,
	// prerm, postrm, config, templates, triggers, shlibs, symbols,
	// md5sums, conffiles...
	Files map[string][]byte
	// Modes records each control member's permission bits, so maintainer
	// scripts stay executable.
	Modes map[string]int64
}

// Name is the package name.
func (c *Control) Name() string { return c.Fields.Get("Package") }

// Conffiles lists the package's conffiles.
func (c *Control) Conffiles() []string {
	var out []string
	for _, l := range strings.Split(string(c.Files["conffiles"]), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "remove-on-upgrade ") {
			continue
		}
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Limits bound what a hostile package can make nroot hold in memory.
const (
	maxControlMember = 64 << 20
	maxControlTotal  = 128 << 20
)

// Reader reads a .deb: debian-binary, then the control archive, then the
// data archive, in the order dpkg requires.
type Reader struct {
	ar      *ArReader
	control *Control
	data    bool
}

// NewReader starts reading a .deb and reads its control archive.
func NewReader(r io.Reader) (*Reader, error) {
	ar, err := NewArReader(r)
	if err != nil {
		return nil, err
	}
	d := &Reader{ar: ar}
	h, err := d.nextMember()
	if err != nil {
		return nil, err
	}
	if h.Name != "debian-binary" {
		return nil, fmt.Errorf("first member is %q, want debian-binary", h.Name)
	}
	ver, err := io.ReadAll(io.LimitReader(ar, 64))
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(ver, []byte("2.")) {
		return nil, fmt.Errorf("unsupported format version %q (want 2.x)", strings.TrimSpace(string(ver)))
	}
	h, err = d.nextMember()
	if err != nil {
		return nil, fmt.Errorf("no control archive: %w", noEOF(err))
	}
	format, err := memberFormat(h.Name, "control.tar", false)
	if err != nil {
		return nil, err
	}
	if d.control, err = readControl(ar, format); err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name, err)
	}
	return d, nil
}

// nextMember skips members dpkg ignores (those starting with "_").
func (d *Reader) nextMember() (*ArHeader, error) {
	for {
		h, err := d.ar.Next()
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(h.Name, "_") {
			return h, nil
		}
	}
}

// memberFormat checks a member name and returns its compression.
func memberFormat(name, want string, data bool) (decompress.Format, error) {
	if !strings.HasPrefix(name, want) {
		return "", fmt.Errorf("member %q where %s.* was expected", name, want)
	}
	ext := strings.TrimPrefix(name, want)
	allowed := map[string]bool{"": true, ".gz": true, ".xz": true, ".zst": true}
	if data {
		allowed[".bz2"] = true
	}
	if !allowed[ext] {
		return "", fmt.Errorf("member %q: unsupported compression %q", name, ext)
	}
	return decompress.ByExt(ext)
}

func readControl(r io.Reader, format decompress.Format) (*Control, error) {
	z, err := decompress.NewReader(format, r)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	tr := tar.NewReader(z)
	c := &Control{Files: map[string][]byte{}, Modes: map[string]int64{}}
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if strings.Contains(name, "/") || name == "." || name == ".." {
			return nil, fmt.Errorf("control member %q is not a plain file name", h.Name)
		}
		if h.Size > maxControlMember || total+h.Size > maxControlTotal {
			return nil, fmt.Errorf("control member %s is too large (%d bytes)", name, h.Size)
		}
		total += h.Size
		b, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return nil, fmt.Errorf("control member %s: %w", name, noEOF(err))
		}
		c.Files[name] = b
		c.Modes[name] = h.Mode
	}
	raw, ok := c.Files["control"]
	if !ok {
		return nil, errors.New("control archive has no control file")
	}
	p, err := control.NewReader(bytes.NewReader(raw)).Next()
	if err != nil {
		return nil, fmt.Errorf("control file: %w", err)
	}
	if p.Get("Package") == "" || p.Get("Version") == "" || p.Get("Architecture") == "" {
		return nil, errors.New("control file lacks Package, Version or Architecture")
	}
	c.Fields = p
	delete(c.Files, "control")
	return c, nil
}

// Control returns the package's control information.
func (d *Reader) Control() *Control { return d.control }

// DataStream returns the decompressed data archive as a byte stream, for
// callers that keep a copy of it.
func (d *Reader) DataStream() (io.Reader, io.Closer, error) {
	if d.data {
		return nil, nil, errors.New("data archive already read")
	}
	d.data = true
	h, err := d.nextMember()
	if err != nil {
		return nil, nil, fmt.Errorf("no data archive: %w", noEOF(err))
	}
	format, err := memberFormat(h.Name, "data.tar", true)
	if err != nil {
		return nil, nil, err
	}
	z, err := decompress.NewStreamReader(format, d.ar)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", h.Name, err)
	}
	return z, z, nil
}

// Data returns a tar reader over the data archive. Call it once, after
// NewReader; the caller must read the tar stream to its end for the
// package to be checked whole.
func (d *Reader) Data() (*tar.Reader, io.Closer, error) {
	z, c, err := d.DataStream()
	if err != nil {
		return nil, nil, err
	}
	return tar.NewReader(z), c, nil
}
