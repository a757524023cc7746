package apt

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"nroot/format/control"
)

// FileHash is one entry of a Release file's SHA256 list.
type FileHash struct {
	Path   string
	Size   int64
	SHA256 string
}

// Release is the parsed, signed description of one suite.
type Release struct {
	Origin        string
	Label         string
	Suite         string
	Codename      string
	Version       string
	Date          time.Time
	ValidUntil    time.Time // zero when the Release has none
	Architectures []string
	Components    []string
	AcquireByHash bool
	NotAutomatic  bool
	// Files maps a path relative to dists/SUITE to its size and SHA256.
	Files map[string]FileHash

	noAllSupport bool // No-Support-for-Architecture-all: Packages
}

// ParseRelease parses the text of a Release file (the signed part of an
// InRelease). Only SHA256 is trusted; a Release without it is refused, as
// apt refuses weak hashes.
func ParseRelease(data []byte) (*Release, error) {
	p, err := control.NewReader(bytes.NewReader(data)).Next()
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	r := &Release{
		Origin:        p.Get("Origin"),
		Label:         p.Get("Label"),
		Suite:         p.Get("Suite"),
		Codename:      p.Get("Codename"),
		Version:       p.Get("Version"),
		Architectures: strings.Fields(p.Get("Architectures")),
		Components:    strings.Fields(p.Get("Components")),
		AcquireByHash: strings.EqualFold(p.Get("Acquire-By-Hash"), "yes"),
		NotAutomatic:  strings.EqualFold(p.Get("NotAutomatic"), "yes"),
		Files:         map[string]FileHash{},
		noAllSupport:  strings.EqualFold(p.Get("No-Support-for-Architecture-all"), "Packages"),
	}
	if r.Suite == "" && r.Codename == "" {
		return nil, fmt.Errorf("release: neither Suite nor Codename is set")
	}
	if d := p.Get("Date"); d != "" {
		if r.Date, err = parseDate(d); err != nil {
			return nil, fmt.Errorf("release: Date: %w", err)
		}
	}
	if d := p.Get("Valid-Until"); d != "" {
		if r.ValidUntil, err = parseDate(d); err != nil {
			return nil, fmt.Errorf("release: Valid-Until: %w", err)
		}
	}
	sums, ok := p.Lookup("SHA256")
	if !ok {
		return nil, fmt.Errorf("release: no SHA256 field; nroot does not trust MD5 or SHA1 alone")
	}
	for _, line := range strings.Split(sums, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || len(f[0]) != 64 {
			return nil, fmt.Errorf("release: SHA256: malformed line %q", line)
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("release: SHA256: bad size in %q", line)
		}
		r.Files[f[2]] = FileHash{Path: f[2], Size: size, SHA256: strings.ToLower(f[0])}
	}
	return r, nil
}

// parseDate reads RFC 2822 dates as the archive writes them, including the
// single-digit day and the "UTC" zone name.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123Z, time.RFC1123, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse date %q", s)
}

// CheckOptions says what Check must hold a Release to.
type CheckOptions struct {
	// Suite is what the user asked for: a codename or a suite alias.
	Suite string
	// Now is the time to check Date and Valid-Until against.
	Now time.Time
	// NoCheckValidUntil skips the expiry check, as apt's
	// Acquire::Check-Valid-Until=false.
	NoCheckValidUntil bool
	// MaxFuture is the clock skew allowed on Date.
	MaxFuture time.Duration
}

// Check verifies freshness and that the Release is for the suite asked for.
func (r *Release) Check(o CheckOptions) error {
	name := r.Codename
	if name == "" {
		name = r.Suite
	}
	if o.Suite != "" && o.Suite != r.Suite && o.Suite != r.Codename {
		return fmt.Errorf("release for %q says Suite %q, Codename %q: the mirror serves a different distribution under this name; check the suite and mirror", o.Suite, r.Suite, r.Codename)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.MaxFuture == 0 {
		o.MaxFuture = 10 * time.Minute
	}
	if !r.Date.IsZero() && r.Date.After(o.Now.Add(o.MaxFuture)) {
		return fmt.Errorf("release %s: Date %s is in the future; check this machine's clock", name, r.Date.Format(time.RFC1123))
	}
	if !o.NoCheckValidUntil && !r.ValidUntil.IsZero() && o.Now.After(r.ValidUntil) {
		return fmt.Errorf("release %s: expired: Valid-Until %s has passed; the mirror is stale (use a current mirror) or pass --no-check-valid-until for an archived snapshot", name, r.ValidUntil.Format(time.RFC1123))
	}
	return nil
}

// CodenameFor is the codename spelling of the suite asked for: Debian's
// pockets carry their own codename (bookworm-updates), Ubuntu's share the
// release's (noble-updates says Codename: noble), so the pocket of the
// asked name is kept.
func (r *Release) CodenameFor(asked string) string {
	name := r.Name()
	for _, p := range suiteSuffixes {
		if strings.HasSuffix(asked, p) && !strings.HasSuffix(name, p) {
			return name + p
		}
	}
	return name
}

// Name is the codename, or the suite when the Release has no codename.
func (r *Release) Name() string {
	if r.Codename != "" {
		return r.Codename
	}
	return r.Suite
}
