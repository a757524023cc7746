// Package overlay renders the files a node gets beside its identity:
// overlays, each a directory tree of files and Go text/template
// templates in DIR/NAME/, attached to a node or a group of the inventory
// with overlays=NAME. Rendered per node with its variables and the whole
// inventory, they go into the node's own initramfs segment, which the
// identity hook copies onto the root before switch-root.
//
// In an overlay's tree:
//
//	etc/motd                a file, copied with its mode
//	etc/slurm/slurm.conf.tmpl   a template, written as etc/slurm/slurm.conf
//	etc/munge/munge.key.secret  a secret, written as etc/munge/munge.key,
//	                            mode 0600, into the segments of this
//	                            overlay's nodes only
//	etc/x.conf.secret.tmpl  a secret template (or x.conf.tmpl.secret)
//	.owners                 optional: "PATH UID:GID" lines; files are
//	                        owned by root (0:0) otherwise
//
// Built-in overlays need no directory: hosts, network and ssh-host-cert
// (builtin.go).
package overlay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"nroot/node/initrd"
	"nroot/serve/identity"
	"nroot/serve/inventory"
)

// Limits that bound what an overlay can make nroot do.
const (
	MaxFile  = 16 << 20  // bytes of one file, read or rendered
	MaxTotal = 128 << 20 // bytes of one node's files
	MaxFiles = 10000     // entries of one node's overlays
)

// Suffixes that mark a template and a secret.
const (
	TemplateSuffix = ".tmpl"
	SecretSuffix   = ".secret"
)

// ErrOverlay is wrapped by every error about an overlay's contents.
var ErrOverlay = errors.New("bad overlay")

// File is one entry of a node's rendered overlays, named as on the root.
type File struct {
	Path     string      `json:"path"` // etc/hosts: relative, clean, slash-separated
	Mode     fs.FileMode `json:"mode"` // permission bits, with fs.ModeDir for a directory
	UID      int         `json:"uid"`
	GID      int         `json:"gid"`
	Data     []byte      `json:"-"`
	Link     string      `json:"link,omitempty"` // a symlink's target (built-ins only)
	Secret   bool        `json:"secret,omitempty"`
	Overlay  string      `json:"overlay"`
	Template bool        `json:"template,omitempty"`
}

// Host is a node as templates see it.
type Host struct {
	Name       string            // the inventory's name
	Hostname   string            // its host name
	MAC        string            // 52:54:00:00:00:01
	Address    string            // "dhcp" or 10.0.0.5/24
	IP         string            // 10.0.0.5, or "" with dhcp
	Generation string            // pinned generation, "" for the published one
	Groups     []string          // its groups, in order
	Overlays   []string          // its overlays
	Vars       map[string]string // its variables (never nil)
}

// Data is what a template is executed with.
type Data struct {
	Node   Host                        // the node rendered for
	Vars   map[string]string           // .Node.Vars
	Nodes  []Host                      // every node, in inventory order
	Groups map[string]*inventory.Group // every group by name (.Nodes are names)
}

// Options are where overlays come from and what the built-ins need.
type Options struct {
	// Dir holds one directory per overlay; "" when only built-ins are used.
	Dir string
	// Identity is the node's (for ssh-host-cert).
	Identity *identity.Identity
	// CA signs host certificates (ssh-host-cert).
	CA *identity.CA
	// Network is how the image configures interfaces: "networkd",
	// "ifupdown" or "script" (DetectNetwork); "" is networkd.
	Network string
}

// HostOf is the node as templates see it.
func HostOf(n inventory.Node) Host {
	h := Host{Name: n.Name, Hostname: n.Hostname, MAC: n.MAC, Address: n.Address, Generation: n.Gen,
		Groups: slices.Clone(n.Groups), Overlays: slices.Clone(n.Overlays), Vars: maps.Clone(n.Vars)}
	if h.Vars == nil {
		h.Vars = map[string]string{}
	}
	if p, err := netip.ParsePrefix(n.Address); err == nil {
		h.IP = p.Addr().Unmap().String()
	}
	if h.Groups == nil {
		h.Groups = []string{}
	}
	if h.Overlays == nil {
		h.Overlays = []string{}
	}
	return h
}

// NewData is the template data for node n of inv.
func NewData(inv *inventory.Inventory, n inventory.Node) Data {
	d := Data{Node: HostOf(n), Groups: inv.Groups}
	d.Vars = d.Node.Vars
	for _, m := range inv.Nodes {
		d.Nodes = append(d.Nodes, HostOf(m))
	}
	if d.Groups == nil {
		d.Groups = map[string]*inventory.Group{}
	}
	return d
}

// Render renders every overlay of node n, built-ins and directories, in
// the node's order. Two overlays giving one path is an error, as is a
// missing overlay, a template that fails or names a missing variable,
// and anything in an overlay's tree but directories and regular files.
func Render(inv *inventory.Inventory, n inventory.Node, o Options) ([]File, error) {
	data := NewData(inv, n)
	var out []File
	from := map[string]string{}
	total := 0
	for _, name := range n.Overlays {
		var files []File
		var err error
		if b, ok := builtins[name]; ok && !o.hasDir(name) {
			files, err = b(data, o)
		} else {
			files, err = o.renderDir(name, data)
		}
		if err != nil {
			return nil, fmt.Errorf("node %s: overlay %s: %w", n.Name, name, err)
		}
		for _, f := range files {
			if prev, dup := from[f.Path]; dup {
				if f.Mode.IsDir() {
					continue
				}
				return nil, fmt.Errorf("node %s: overlays %s and %s both give %s: %w", n.Name, prev, name, f.Path, ErrOverlay)
			}
			from[f.Path] = name
			total += len(f.Data)
			if total > MaxTotal || len(from) > MaxFiles {
				return nil, fmt.Errorf("node %s: overlays of more than %d bytes or %d entries: %w", n.Name, MaxTotal, MaxFiles, ErrOverlay)
			}
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// UnknownError: an overlay the inventory names is neither a built-in nor
// a directory.
type UnknownError struct {
	Name string
	Err  error
}

func (e *UnknownError) Error() string { return e.Err.Error() }
func (e *UnknownError) Unwrap() error { return e.Err }

// hasDir says whether DIR/NAME exists: a directory of the name takes the
// place of a built-in.
func (o Options) hasDir(name string) bool {
	if o.Dir == "" {
		return false
	}
	_, err := os.Lstat(filepath.Join(o.Dir, name))
	return err == nil
}

// Names lists the built-in overlays.
func Names() []string {
	return slices.Sorted(maps.Keys(builtins))
}

// renderDir renders DIR/NAME.
func (o Options) renderDir(name string, data Data) ([]File, error) {
	if o.Dir == "" {
		return nil, &UnknownError{Name: name, Err: fmt.Errorf("%w: no such built-in (%s) and no overlays directory given (--overlays)", ErrOverlay, strings.Join(Names(), ", "))}
	}
	top := filepath.Join(o.Dir, name)
	fi, err := os.Lstat(top)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &UnknownError{Name: name, Err: fmt.Errorf("%w: no such built-in (%s) and no directory %s", ErrOverlay, strings.Join(Names(), ", "), top)}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v (built-ins: %s)", ErrOverlay, err, strings.Join(Names(), ", "))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrOverlay, top)
	}
	owners, err := readOwners(filepath.Join(top, ".owners"))
	if err != nil {
		return nil, err
	}
	var out []File
	err = filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(top, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." || rel == ".owners" {
			return nil
		}
		if len(out) >= MaxFiles {
			return fmt.Errorf("%w: more than %d entries", ErrOverlay, MaxFiles)
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		f := File{Overlay: name, Mode: fi.Mode().Perm()}
		switch {
		case fi.IsDir():
			f.Mode |= fs.ModeDir
		case fi.Mode().IsRegular():
		default:
			return fmt.Errorf("%w: %s is a %v; an overlay holds directories and regular files only", ErrOverlay, p, fi.Mode().Type())
		}
		if !fi.IsDir() {
			// x.secret.tmpl and x.tmpl.secret are both a secret template.
			for range 2 {
				if !f.Template && strings.HasSuffix(rel, TemplateSuffix) {
					rel, f.Template = strings.TrimSuffix(rel, TemplateSuffix), true
				} else if !f.Secret && strings.HasSuffix(rel, SecretSuffix) {
					rel, f.Secret = strings.TrimSuffix(rel, SecretSuffix), true
				}
			}
			if (f.Template || f.Secret) && (path.Base(rel) == "." || strings.HasSuffix(rel, "/")) {
				return fmt.Errorf("%w: %s names no file", ErrOverlay, p)
			}
			if f.Secret {
				f.Mode = 0o600
			}
		}
		if f.Path, err = cleanPath(rel); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrOverlay, p, err)
		}
		if ow, ok := owners[f.Path]; ok {
			f.UID, f.GID = ow[0], ow[1]
			delete(owners, f.Path)
		}
		if fi.IsDir() {
			out = append(out, f)
			return nil
		}
		b, err := readRegular(p)
		if err != nil {
			return err
		}
		if f.Template {
			if b, err = Execute(rel, string(b), data); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrOverlay, p, err)
			}
		}
		f.Data = b
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for p := range owners {
		return nil, fmt.Errorf("%w: %s names %s, which the overlay does not have", ErrOverlay, filepath.Join(top, ".owners"), p)
	}
	return out, nil
}

// readRegular reads a regular file without following a symlink, bounded.
func readRegular(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOverlay, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrOverlay, p)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrOverlay, p, MaxFile)
	}
	return b, nil
}

// cleanPath takes a path relative to the root that stays in it.
func cleanPath(rel string) (string, error) {
	c := path.Clean(rel)
	if rel == "" || c != rel || path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.ContainsAny(c, "\x00\n") || len(c) > 4096 {
		return "", fmt.Errorf("%q leaves the root or is not a clean relative path", rel)
	}
	return c, nil
}

// Execute renders one template: text/template with missingkey=error, so
// a missing variable is an error and never an empty string; its output
// is bounded by MaxFile.
func Execute(name, text string, data any) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, err
	}
	var b limitedBuffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// funcs are the template functions besides text/template's own.
var funcs = template.FuncMap{
	"join":  strings.Join,
	"split": strings.Split,
	// var is a node's variable, an error when it has none (index on a
	// map gives "" for a missing key): {{var .Node "ens4.address"}}.
	"var": func(h Host, k string) (string, error) {
		v, ok := h.Vars[k]
		if !ok {
			return "", fmt.Errorf("node %s has no variable %q", h.Name, k)
		}
		return v, nil
	},
}

type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxFile {
		return 0, fmt.Errorf("output larger than %d bytes", MaxFile)
	}
	return b.Buffer.Write(p)
}

// readOwners reads an overlay's .owners: "PATH UID:GID" per line, # for
// comments. No file: no owners.
func readOwners(p string) (map[string][2]int, error) {
	b, err := readRegular(p)
	if errors.Is(err, os.ErrNotExist) {
		return map[string][2]int{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseOwners(bytes.NewReader(b), p)
}

// ParseOwners parses an .owners file; name is for errors.
func ParseOwners(r io.Reader, name string) (map[string][2]int, error) {
	out := map[string][2]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 8192), 8192)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		fail := func(why string) error { return fmt.Errorf("%w: %s:%d: %s", ErrOverlay, name, n, why) }
		if len(f) != 2 {
			return nil, fail("give PATH UID:GID (numbers)")
		}
		p, err := cleanPath(f[0])
		if err != nil {
			return nil, fail(err.Error())
		}
		u, g, ok := strings.Cut(f[1], ":")
		uid, err1 := strconv.ParseUint(u, 10, 31)
		gid, err2 := strconv.ParseUint(g, 10, 31)
		if !ok || err1 != nil || err2 != nil {
			return nil, fail(fmt.Sprintf("%q is not UID:GID (numbers, as on the node)", f[1]))
		}
		if _, dup := out[p]; dup {
			return nil, fail(p + " given twice")
		}
		out[p] = [2]int{int(uid), int(gid)}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrOverlay, name, err)
	}
	return out, nil
}

// Records are the files as initramfs entries, with every parent
// directory (0755, root) the overlays do not give.
func Records(files []File) []initrd.Record {
	var recs []initrd.Record
	have := map[string]bool{}
	for _, f := range files {
		if f.Mode.IsDir() {
			have[f.Path] = true
		}
	}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "." && !have[d]; d = path.Dir(d) {
			have[d] = true
			recs = append(recs, initrd.Directory(d, 0o755))
		}
		var r initrd.Record
		switch {
		case f.Mode.IsDir():
			r = initrd.Directory(f.Path, uint32(f.Mode.Perm()))
		case f.Link != "":
			r = initrd.Symlink(f.Path, f.Link)
		default:
			r = initrd.StaticFile(f.Path, f.Data, uint32(f.Mode.Perm()))
		}
		r.UID, r.GID = f.UID, f.GID
		recs = append(recs, r)
	}
	return recs
}
