// Package identity keeps what makes one node of a shared image itself:
// its SSH host keys, made once, a stable machine-id and its hostname.
// They are kept on the server in a root-only directory and reach the
// node as a small initramfs segment of their own, loaded after the
// image's shared initramfs; a dracut hook that nroot node installs
// copies them into the node's writable overlay before switch-root, so
// the shared image and its initramfs stay the same for every node.
package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"nroot/internal/atomicfile"
	"nroot/internal/fsroot"
	"nroot/node/initrd"
	"nroot/serve/inventory"
)

// SegmentDir is where a node's files are in its initramfs segment; the
// dracut hook copies the tree below it onto the root.
const SegmentDir = "nroot-identity"

// KeyTypes are the host keys made for a node: those `ssh-keygen -A`
// makes, so sshd finds every key its default configuration names.
var KeyTypes = []string{"ecdsa", "ed25519", "rsa"}

// maxFile bounds what is read back from the store.
const maxFile = 64 << 10

// ErrUnsafeStore says the store could be read or changed by someone
// other than its owner: it holds private keys.
var ErrUnsafeStore = errors.New("identity store not private")

// HostKey is one SSH host key pair, in OpenSSH's file formats.
type HostKey struct {
	Type        string `json:"type"`
	Private     []byte `json:"-"`
	Public      string `json:"public"`      // the .pub line
	Fingerprint string `json:"fingerprint"` // SHA256:..., as ssh-keygen -l shows it
}

// Identity is one node's.
type Identity struct {
	Name      string    `json:"name"`
	Hostname  string    `json:"hostname"`
	MachineID string    `json:"machine_id"`
	Keys      []HostKey `json:"host_keys"`
	Created   bool      `json:"created"` // made by this call, not read back
}

// Store is a directory of identities, one subdirectory per node name.
type Store struct {
	Dir string
}

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Ensure returns the node's identity, making it the first time: keys
// and machine-id are never made again, so the node keeps them across
// reboots and image generations. A changed hostname is recorded.
func (s Store) Ensure(name, hostname string) (*Identity, error) {
	if !nameRe.MatchString(name) || !nameRe.MatchString(hostname) {
		return nil, fmt.Errorf("identity: %q/%q: a node name and hostname are one DNS label", name, hostname)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, name)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		id, err := newIdentity(name, hostname)
		if err != nil {
			return nil, err
		}
		if err := s.write(dir, id); err != nil {
			return nil, err
		}
		id.Created = true
		return id, nil
	}
	id, err := s.read(dir, name)
	if err != nil {
		return nil, err
	}
	if id.Hostname != hostname {
		id.Hostname = hostname
		if err := writeAtomic(filepath.Join(dir, "hostname"), []byte(hostname+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// open makes the store (mode 0700) and refuses one that others can
// reach or that another user owns.
func (s Store) open() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("identity store %s: %w", s.Dir, err)
	}
	fi, err := os.Lstat(s.Dir)
	if err != nil {
		return fmt.Errorf("identity store %s: %w", s.Dir, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("identity store %s is not a directory: %w", s.Dir, ErrUnsafeStore)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("identity store %s has mode %v: %w; chmod 700 %s", s.Dir, fi.Mode().Perm(), ErrUnsafeStore, s.Dir)
	case st != nil && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("identity store %s is owned by uid %d, not %d: %w", s.Dir, st.Uid, os.Geteuid(), ErrUnsafeStore)
	}
	return nil
}

func newIdentity(name, hostname string) (*Identity, error) {
	id := &Identity{Name: name, Hostname: hostname}
	var mid [16]byte
	if _, err := rand.Read(mid[:]); err != nil {
		return nil, err
	}
	id.MachineID = hex.EncodeToString(mid[:])
	for _, t := range KeyTypes {
		var key crypto.Signer
		var err error
		switch t {
		case "ecdsa":
			key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case "ed25519":
			_, key, err = ed25519.GenerateKey(rand.Reader)
		case "rsa":
			key, err = rsa.GenerateKey(rand.Reader, 3072)
		}
		if err != nil {
			return nil, fmt.Errorf("identity %s: %s key: %w", name, t, err)
		}
		k, err := hostKey(t, key, "root@"+hostname)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", name, err)
		}
		id.Keys = append(id.Keys, k)
	}
	return id, nil
}

func hostKey(t string, key crypto.Signer, comment string) (HostKey, error) {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return HostKey{}, fmt.Errorf("%s key: %w", t, err)
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return HostKey{}, fmt.Errorf("%s key: %w", t, err)
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n") + " " + comment + "\n"
	return HostKey{Type: t, Private: pem.EncodeToMemory(block), Public: line, Fingerprint: ssh.FingerprintSHA256(pub)}, nil
}

// write puts a new identity in place whole: built in a temporary
// directory beside dir and renamed.
func (s Store) write(dir string, id *Identity) error {
	tmp, err := os.MkdirTemp(s.Dir, "."+id.Name+".tmp-")
	if err != nil {
		return fmt.Errorf("identity %s: %w", id.Name, err)
	}
	defer os.RemoveAll(tmp)
	files := map[string][]byte{"hostname": []byte(id.Hostname + "\n"), "machine-id": []byte(id.MachineID + "\n")}
	for _, k := range id.Keys {
		files["ssh_host_"+k.Type+"_key"] = k.Private
		files["ssh_host_"+k.Type+"_key.pub"] = []byte(k.Public)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o600); err != nil {
			return fmt.Errorf("identity %s: %w", id.Name, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("identity %s: %w", id.Name, err)
	}
	return nil
}

// read loads an identity back, checking that every key parses and that
// its public half is the private key's.
func (s Store) read(dir, name string) (*Identity, error) {
	get := func(f string) ([]byte, error) {
		p := filepath.Join(dir, f)
		b, err := fsroot.ReadHostFile(p, maxFile)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", name, err)
		}
		return b, nil
	}
	id := &Identity{Name: name}
	for _, f := range []struct {
		file string
		dst  *string
		re   *regexp.Regexp
	}{{"hostname", &id.Hostname, nameRe}, {"machine-id", &id.MachineID, machineIDRe}} {
		b, err := get(f.file)
		if err != nil {
			return nil, err
		}
		*f.dst = strings.TrimSuffix(string(b), "\n")
		if !f.re.MatchString(*f.dst) {
			return nil, fmt.Errorf("identity %s: %s holds %q; remove %s to make a new identity", name, filepath.Join(dir, f.file), *f.dst, dir)
		}
	}
	for _, t := range KeyTypes {
		priv, err := get("ssh_host_" + t + "_key")
		if err != nil {
			return nil, err
		}
		pubLine, err := get("ssh_host_" + t + "_key.pub")
		if err != nil {
			return nil, err
		}
		signer, err := ssh.ParsePrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("identity %s: ssh_host_%s_key: %w", name, t, err)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(pubLine)
		if err != nil || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
			return nil, fmt.Errorf("identity %s: ssh_host_%s_key.pub is not the public half of ssh_host_%s_key", name, t, t)
		}
		id.Keys = append(id.Keys, HostKey{Type: t, Private: priv, Public: string(pubLine), Fingerprint: ssh.FingerprintSHA256(pub)})
	}
	return id, nil
}

var machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteSegment writes the node's initramfs segment: an uncompressed
// newc archive holding nroot-identity/etc/hostname, machine-id and
// ssh/ssh_host_*_key{,.pub}, owned by root, with mtime 0, so the
// same identity always gives the same bytes.
func (id *Identity) WriteSegment(w io.Writer) error { return id.WriteSegmentWith(w, nil) }

// WriteSegmentWith writes the segment with extra entries (a node's
// rendered overlays), named as on the root (etc/hosts); each lands below
// SegmentDir. A directory the identity also has is written once; a file
// the identity has, or given twice, is refused.
func (id *Identity) WriteSegmentWith(w io.Writer, extra []initrd.Record) error {
	etc := SegmentDir + "/etc"
	recs := []initrd.Record{
		initrd.Directory(SegmentDir, 0o755),
		initrd.Directory(etc, 0o755),
		initrd.Directory(etc+"/ssh", 0o755),
		initrd.StaticFile(etc+"/hostname", []byte(id.Hostname+"\n"), 0o644),
		initrd.StaticFile(etc+"/machine-id", []byte(id.MachineID+"\n"), 0o444),
	}
	for _, k := range id.Keys {
		recs = append(recs,
			initrd.StaticFile(etc+"/ssh/ssh_host_"+k.Type+"_key", k.Private, 0o600),
			initrd.StaticFile(etc+"/ssh/ssh_host_"+k.Type+"_key.pub", []byte(k.Public), 0o644))
	}
	have := map[string]bool{}
	for _, r := range recs {
		have[r.Name] = true
	}
	for _, r := range extra {
		r.Name = SegmentDir + "/" + r.Name
		if have[r.Name] {
			if r.Mode&initrd.TypeMask == initrd.TypeDir {
				continue
			}
			return fmt.Errorf("identity %s: %s is the identity's own or given twice", id.Name, strings.TrimPrefix(r.Name, SegmentDir+"/"))
		}
		have[r.Name] = true
		recs = append(recs, r)
	}
	initrd.Sort(recs)
	initrd.DedupHardlinks(recs) // numbers the inodes
	return initrd.WriteArchive(w, recs)
}

// Segment is a node's identity and where its segment was written.
type Segment struct {
	*Identity
	MAC     string `json:"mac"`
	Segment string `json:"segment"`
}

// WriteSegments makes (once) the identity of every node and writes its
// segment to dir/NAME.img, mode 0600 (it holds the private keys), each
// through a temporary file renamed into place.
func (s Store) WriteSegments(nodes []inventory.Node, dir string) ([]Segment, error) {
	return s.WriteSegmentsWith(nodes, dir, nil)
}

// Extra gives the entries a node's segment holds beside its identity.
type Extra func(n inventory.Node, id *Identity) ([]initrd.Record, error)

// WriteSegmentsWith is WriteSegments with extra entries for each node
// (nil: none).
func (s Store) WriteSegmentsWith(nodes []inventory.Node, dir string, extra Extra) ([]Segment, error) {
	return s.WriteSegmentsAs(nodes, dir, extra, 0, 0o600)
}

// WriteSegmentsAs is WriteSegmentsWith giving each segment group gid and
// mode before it is renamed into place: a failure on one node leaves the
// segments written before it, and those not reached, readable as they
// are meant to be.
func (s Store) WriteSegmentsAs(nodes []inventory.Node, dir string, extra Extra, gid int, mode os.FileMode) ([]Segment, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	var out []Segment
	for _, n := range nodes {
		id, err := s.Ensure(n.Name, n.Hostname)
		if err != nil {
			return nil, err
		}
		var more []initrd.Record
		if extra != nil {
			if more, err = extra(n, id); err != nil {
				return nil, err
			}
		}
		path := filepath.Join(dir, n.Name+".img")
		f, err := atomicfile.Create(path, 0o600)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", n.Name, err)
		}
		err = id.WriteSegmentWith(f, more)
		if err == nil {
			err = f.Chown(0, gid)
		}
		if err == nil {
			err = f.Chmod(mode)
		}
		if err == nil {
			err = f.Commit()
		}
		f.Abort()
		if err != nil {
			return nil, fmt.Errorf("identity %s: writing %s: %w", n.Name, path, err)
		}
		out = append(out, Segment{Identity: id, MAC: n.MAC, Segment: path})
	}
	return out, nil
}

// caFile is the cluster's SSH certificate authority in the store: not a
// node's name (those are DNS labels).
const caFile = "ssh_ca_key"

// CA is the cluster's SSH certificate authority, which signs the nodes'
// host keys (the ssh-host-cert overlay).
type CA struct {
	Signer ssh.Signer
	Public string // the .pub line
	// Created: made by this call.
	Created bool
}

// KnownHosts is the one line of a user's known_hosts that trusts the
// host certificates of the nodes with the ssh-host-cert overlay:
// "@cert-authority PATTERN KEY", PATTERN being *.DOMAIN for each domain=
// of theirs, then their host names (bare names, as nodes reach each
// other through /etc/hosts), comma-joined. Never a bare *, which would
// trust the CA for every host. "" when no node has the overlay.
func (c *CA) KnownHosts(nodes []inventory.Node) string {
	var domains, hosts []string
	for _, n := range nodes {
		if !slices.Contains(n.Overlays, "ssh-host-cert") {
			continue
		}
		if d := n.Vars["domain"]; d != "" && !slices.Contains(domains, "*."+d) {
			domains = append(domains, "*."+d)
		}
		if !slices.Contains(hosts, n.Hostname) {
			hosts = append(hosts, n.Hostname)
		}
	}
	if len(hosts) == 0 {
		return ""
	}
	return "@cert-authority " + strings.Join(append(domains, hosts...), ",") + " " + strings.TrimSuffix(c.Public, "\n")
}

// EnsureCA returns the store's CA, making it (ed25519, mode 0600 in the
// root-only store) the first time.
func (s Store) EnsureCA() (*CA, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	p := filepath.Join(s.Dir, caFile)
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		k, err := hostKey("ed25519", key, "nroot cluster CA")
		if err != nil {
			return nil, fmt.Errorf("identity CA: %w", err)
		}
		if err := writeAtomic(p+".pub", []byte(k.Public), 0o644); err != nil {
			return nil, fmt.Errorf("identity CA: %w", err)
		}
		if err := writeAtomic(p, k.Private, 0o600); err != nil {
			return nil, fmt.Errorf("identity CA: %w", err)
		}
		ca, err := s.readCA(p)
		if ca != nil {
			ca.Created = true
		}
		return ca, err
	}
	return s.readCA(p)
}

func (s Store) readCA(p string) (*CA, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("identity CA: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity CA %s: mode %v: %w; chmod 600 %s", p, fi.Mode(), ErrUnsafeStore, p)
	}
	b, err := fsroot.ReadHostFile(p, maxFile)
	if err != nil {
		return nil, fmt.Errorf("identity CA: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("identity CA %s: %w", p, err)
	}
	pub := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(signer.PublicKey())), "\n") + " nroot cluster CA\n"
	return &CA{Signer: signer, Public: pub}, nil
}

// HostCert signs the node's host key of type t (ecdsa, ed25519, rsa) as
// a host certificate for the principals, valid forever (nroot pxe signs
// again on every run), and returns it as a -cert.pub line.
func (c *CA) HostCert(id *Identity, t string, principals []string) (string, error) {
	for _, k := range id.Keys {
		if k.Type != t {
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.Public))
		if err != nil {
			return "", fmt.Errorf("identity %s: %s key: %w", id.Name, t, err)
		}
		cert := &ssh.Certificate{Key: pub, CertType: ssh.HostCert, KeyId: id.Hostname, ValidPrincipals: principals,
			ValidAfter: 0, ValidBefore: ssh.CertTimeInfinity}
		signer := c.Signer
		if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
			if signer, err = ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512}); err != nil {
				return "", err
			}
		}
		if err := cert.SignCert(rand.Reader, signer); err != nil {
			return "", fmt.Errorf("identity %s: signing its %s key: %w", id.Name, t, err)
		}
		return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(cert)), "\n") + " " + id.Hostname + "\n", nil
	}
	return "", fmt.Errorf("identity %s: no %s host key", id.Name, t)
}
