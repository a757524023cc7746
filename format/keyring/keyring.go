// Package keyring holds the OpenPGP keyrings that nroot trusts for archive
// signatures: the bundled Debian and Ubuntu archive keyrings and any the
// user adds, so that no keyring package has to be installed on the host.
package keyring

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

//go:embed data/*
var data embed.FS

// Bundled keyring names.
const (
	Debian = "debian"
	Ubuntu = "ubuntu"
)

// bundle records where each embedded keyring came from, so a user can check
// it against the distribution's own package.
var bundle = []struct {
	name, file, origin, source string
}{
	{Debian, "data/debian-archive-keyring.pgp", "Debian", "debian-archive-keyring 2025.1 (usr/share/keyrings/debian-archive-keyring.pgp)"},
	{Ubuntu, "data/ubuntu-archive-keyring.gpg", "Ubuntu", "ubuntu-keyring 2023.11.28.1-0.2 (usr/share/keyrings/ubuntu-archive-keyring.gpg)"},
}

// Keyring is a named set of public keys.
type Keyring struct {
	Name     string // "debian", "ubuntu", or the file it was read from
	Source   string // where the keys came from
	Origin   string // the Release Origin this keyring signs for, if bundled
	Entities openpgp.EntityList
	Raw      []byte // the keyring in binary OpenPGP form, for Signed-By files
}

// Key describes one primary key of a keyring.
type Key struct {
	Fingerprint string     `json:"fingerprint"`
	KeyID       string     `json:"key_id"`
	UserID      string     `json:"user_id"`
	Algorithm   string     `json:"algorithm"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires,omitempty"`
	Keyring     string     `json:"keyring"`
}

// Bundled returns every keyring embedded in nroot.
func Bundled() []*Keyring {
	var out []*Keyring
	for _, b := range bundle {
		raw, err := data.ReadFile(b.file)
		if err != nil {
			panic(fmt.Sprintf("keyring: embedded %s missing: %v", b.file, err))
		}
		k, err := Read(bytes.NewReader(raw), b.name)
		if err != nil {
			panic(fmt.Sprintf("keyring: embedded %s unreadable: %v", b.file, err))
		}
		k.Source, k.Origin = b.source, b.origin
		out = append(out, k)
	}
	return out
}

// Named returns the bundled keyring with the given name.
func Named(name string) (*Keyring, error) {
	var names []string
	for _, k := range Bundled() {
		if k.Name == name {
			return k, nil
		}
		names = append(names, k.Name)
	}
	return nil, fmt.Errorf("keyring: no bundled keyring %q (have %s)", name, strings.Join(names, ", "))
}

// ForOrigin returns the bundled keyring for a Release file's Origin field
// (Debian, Ubuntu), or nil when nroot bundles none for it.
func ForOrigin(origin string) *Keyring {
	for _, k := range Bundled() {
		if strings.EqualFold(k.Origin, origin) {
			return k
		}
	}
	return nil
}

// Load reads a keyring file, armored or binary. A name of a bundled
// keyring ("debian", "ubuntu") is accepted in place of a path.
func Load(path string) (*Keyring, error) {
	if k, err := Named(path); err == nil {
		return k, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	defer f.Close()
	k, err := Read(f, path)
	if err != nil {
		return nil, err
	}
	k.Source = path
	return k, nil
}

// maxDirKeyrings bounds the keyrings LoadDir reads.
const maxDirKeyrings = 256

// LoadDir reads the keyrings of a directory as apt reads a trusted.gpg.d
// directory, and as mmdebstrap's --keyring DIR passes one to apt: every
// regular file named *.gpg or *.asc, in name order. A directory with
// none is an error.
func LoadDir(dir string) ([]*Keyring, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("keyring directory %s: %w", dir, err)
	}
	var out []*Keyring
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".gpg") && !strings.HasSuffix(name, ".asc") {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if len(out) == maxDirKeyrings {
			return nil, fmt.Errorf("keyring directory %s: more than %d keyrings", dir, maxDirKeyrings)
		}
		k, err := Load(p)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("keyring directory %s: no *.gpg or *.asc keyring in it", dir)
	}
	return out, nil
}

// Read parses an armored or binary keyring.
func Read(r io.Reader, name string) (*Keyring, error) {
	raw, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", name, err)
	}
	var el openpgp.EntityList
	if bytes.Contains(raw[:min(len(raw), 1024)], []byte("-----BEGIN PGP")) {
		el, err = readArmored(raw)
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(raw))
	}
	if err != nil {
		return nil, fmt.Errorf("keyring %s: not an OpenPGP keyring (armored or binary): %w", name, err)
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("keyring %s: holds no keys", name)
	}
	bin, err := serialize(el)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", name, err)
	}
	return &Keyring{Name: name, Source: name, Entities: el, Raw: bin}, nil
}

// readArmored reads every armored block, since .asc files may hold several.
func readArmored(raw []byte) (openpgp.EntityList, error) {
	var all openpgp.EntityList
	rest := raw
	for {
		i := bytes.Index(rest, []byte("-----BEGIN PGP"))
		if i < 0 {
			break
		}
		rest = rest[i:]
		end := bytes.Index(rest, []byte("-----END PGP"))
		if end < 0 {
			return nil, fmt.Errorf("armor block without END line")
		}
		nl := bytes.IndexByte(rest[end:], '\n')
		if nl < 0 {
			nl = len(rest) - end
		}
		blk, err := armor.Decode(bytes.NewReader(rest[:end+nl]))
		if err != nil {
			return nil, err
		}
		el, err := openpgp.ReadKeyRing(blk.Body)
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
		rest = rest[end+nl:]
	}
	return all, nil
}

func serialize(el openpgp.EntityList) ([]byte, error) {
	var buf bytes.Buffer
	for _, e := range el {
		if err := e.Serialize(&buf); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// Merge joins keyrings into one, for verification against any of them.
func Merge(name string, rings ...*Keyring) *Keyring {
	m := &Keyring{Name: name}
	var srcs []string
	for _, k := range rings {
		m.Entities = append(m.Entities, k.Entities...)
		m.Raw = append(m.Raw, k.Raw...)
		srcs = append(srcs, k.Source)
	}
	m.Source = strings.Join(srcs, " + ")
	return m
}

// Keys lists the primary keys, sorted by fingerprint.
func (k *Keyring) Keys() []Key {
	var out []Key
	for _, e := range k.Entities {
		pk := e.PrimaryKey
		key := Key{
			Fingerprint: strings.ToUpper(hex.EncodeToString(pk.Fingerprint)),
			KeyID:       fmt.Sprintf("%016X", pk.KeyId),
			Algorithm:   Algorithm(pk),
			Created:     pk.CreationTime.UTC(),
			Keyring:     k.Name,
		}
		if id := e.PrimaryIdentity(); id != nil {
			key.UserID = id.Name
			if id.SelfSignature != nil && id.SelfSignature.KeyLifetimeSecs != nil && *id.SelfSignature.KeyLifetimeSecs > 0 {
				t := pk.CreationTime.Add(time.Duration(*id.SelfSignature.KeyLifetimeSecs) * time.Second).UTC()
				key.Expires = &t
			}
		}
		out = append(out, key)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	return out
}

// Fingerprints returns the primary key fingerprints, sorted.
func (k *Keyring) Fingerprints() []string {
	var out []string
	for _, key := range k.Keys() {
		out = append(out, key.Fingerprint)
	}
	return out
}

// Digest is the SHA256 of the binary keyring, recorded in lockfiles.
func (k *Keyring) Digest() string {
	s := sha256.Sum256(k.Raw)
	return hex.EncodeToString(s[:])
}

// Algorithm names a public key algorithm the way gpg --list-keys does.
func Algorithm(pk *packet.PublicKey) string {
	bits, _ := pk.BitLength()
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		return fmt.Sprintf("rsa%d", bits)
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519:
		return "ed25519"
	case packet.PubKeyAlgoEd448:
		return "ed448"
	case packet.PubKeyAlgoECDSA:
		return fmt.Sprintf("nistp%d", bits)
	case packet.PubKeyAlgoDSA:
		return fmt.Sprintf("dsa%d", bits)
	}
	return fmt.Sprintf("algo%d", pk.PubKeyAlgo)
}
