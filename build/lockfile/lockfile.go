// Package lockfile is the plan a resolution gives: every package to
// install, pinned by hash, and what vouched for it (the signed suites and
// the keyrings trusted). Written with --lock, it is a lockfile that later
// stages replay without resolving again; readers of a plan need only this
// package.
package lockfile

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"nroot/build/hostapt"
)

// Version is the version of the lockfile format.
const Version = 1

// Plan is the output of resolution: every package to install, pinned by
// hash, and what vouched for it. Written with --lock, it is a lockfile
// that later stages replay without resolving again.
type Plan struct {
	LockVersion   int       `json:"lock_version"`
	NrootVersion  string    `json:"nroot_version,omitempty"` // the nroot that wrote it
	Suite         string    `json:"suite"`                   // as asked, e.g. stable
	Codename      string    `json:"codename"`
	Origin        string    `json:"origin"`
	Variant       string    `json:"variant"`
	Architectures []string  `json:"architectures"`
	Components    []string  `json:"components"`
	Include       []string  `json:"include,omitempty"`
	Exclude       []string  `json:"exclude,omitempty"`
	NoUpdates     bool      `json:"no_updates,omitempty"`
	NoSecurity    bool      `json:"no_security,omitempty"`
	Sources       []Source  `json:"sources"`
	Keyrings      []Keyring `json:"keyrings"`
	Packages      []Package `json:"packages"`
	TotalSize     int64     `json:"total_size"`
}

// Source is a suite that was used, with the hash of the signed
// InRelease and who signed it.
type Source struct {
	URI             string   `json:"uri"`
	Suite           string   `json:"suite"`
	Codename        string   `json:"codename"`
	Components      []string `json:"components"`
	InRelease       string   `json:"inrelease"`
	InReleaseSHA256 string   `json:"inrelease_sha256"`
	Signer          string   `json:"signer"`
	Keyring         string   `json:"keyring"`
	// Expired: the Release was past its Valid-Until and accepted with
	// --no-check-valid-until; the image's APT must accept it too.
	Expired bool `json:"expired,omitempty"`
}

// Keyring names a keyring that was trusted.
type Keyring struct {
	Name         string   `json:"name"`
	Source       string   `json:"source"`
	SHA256       string   `json:"sha256"`
	Fingerprints []string `json:"fingerprints"`
}

// Package is one package to install, exactly.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	Filename     string `json:"filename"`
	URI          string `json:"uri"` // the mirror that serves Filename
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	Essential    bool   `json:"essential,omitempty"`
	Priority     string `json:"priority,omitempty"`
	Reason       string `json:"reason"` // the stage that seeded it, or the package that pulled it in
	Stage        string `json:"stage"`  // the stage it was selected in
}

// AutoInstalled says whether apt would mark the package automatically
// installed: pulled in as a dependency outside the essential stage (which
// mmdebstrap installs with dpkg, not apt).
func (p *Package) AutoInstalled() bool {
	return p.Reason != p.Stage && p.Stage != "essential"
}

// URL is where the package is downloaded from.
func (p *Package) URL() string {
	return strings.TrimRight(p.URI, "/") + "/" + p.Filename
}

// Write writes a plan as a lockfile.
func Write(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// Read reads and checks a lockfile.
func Read(r io.Reader, name string) (*Plan, error) {
	dec := json.NewDecoder(io.LimitReader(r, 256<<20))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s is not an nroot lockfile (%v); make one with nroot resolve --lock", name, err)
	}
	if p.LockVersion != Version {
		return nil, fmt.Errorf("lockfile %s: lock_version %d, this nroot reads %d; re-create it with nroot resolve --lock", name, p.LockVersion, Version)
	}
	if len(p.Packages) == 0 {
		return nil, fmt.Errorf("lockfile %s: no packages", name)
	}
	for i, pkg := range p.Packages {
		switch {
		case pkg.Name == "" || pkg.Version == "" || pkg.Architecture == "":
			return nil, fmt.Errorf("lockfile %s: packages[%d]: name, version and architecture are required", name, i)
		case len(pkg.SHA256) != 64 || strings.Trim(strings.ToLower(pkg.SHA256), "0123456789abcdef") != "":
			return nil, fmt.Errorf("lockfile %s: package %s: sha256 %q is not a SHA256 hex digest", name, pkg.Name, pkg.SHA256)
		case pkg.Size <= 0:
			return nil, fmt.Errorf("lockfile %s: package %s: size must be positive", name, pkg.Name)
		case pkg.Filename == "" || strings.HasPrefix(pkg.Filename, "/") || strings.Contains("/"+pkg.Filename+"/", "/../"):
			return nil, fmt.Errorf("lockfile %s: package %s: filename %q must be a relative path inside the mirror", name, pkg.Name, pkg.Filename)
		case hostapt.CheckURI(pkg.URI) != nil:
			return nil, fmt.Errorf("lockfile %s: package %s: uri %q is not an http(s) URL", name, pkg.Name, pkg.URI)
		}
	}
	return &p, nil
}
