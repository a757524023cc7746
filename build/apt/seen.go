package apt

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"nroot/internal/atomicfile"
	"nroot/internal/fetch"
)

// seenRelease is what the newest verified Release of a suite at a mirror
// said. It is written only after verification, so a later, older Release
// (a mirror that went back, or someone replaying an old signed file to
// withhold security updates) can be refused.
type seenRelease struct {
	Date     time.Time `json:"date"`
	Codename string    `json:"codename"`
}

// ErrOlderRelease says a Release is older than one already seen for the
// same suite and mirror.
var ErrOlderRelease = errors.New("release older than one already seen")

// OlderReleaseError names both dates.
type OlderReleaseError struct {
	URL        string
	Date, Seen time.Time
}

func (e *OlderReleaseError) Error() string {
	return fmt.Sprintf("%s is dated %s, older than the %s seen before: the mirror went back in time, or an old signed Release is being replayed to withhold updates; use a current mirror, or pass --allow-older-release for a snapshot",
		e.URL, e.Date.UTC().Format(time.RFC1123), e.Seen.UTC().Format(time.RFC1123))
}

func (e *OlderReleaseError) Unwrap() error { return ErrOlderRelease }

func seenPath(f *fetch.Fetcher, src *Source) string {
	s := sha256.Sum256([]byte(src.URI + "\x00" + src.Suite))
	return filepath.Join(f.CacheDir, "seen", hex.EncodeToString(s[:16])+".json")
}

// checkSeen compares a verified Release with the newest one seen for the
// suite: an older Date is refused unless allowed; a codename that changed
// behind an alias is reported; a newer Release becomes the one seen.
func (o *Options) checkSeen(d *Dist) error {
	f := o.fetcher()
	path := seenPath(f, d.Source)
	var prev seenRelease
	b, err := os.ReadFile(path)
	have := err == nil && json.Unmarshal(b, &prev) == nil && !prev.Date.IsZero()
	r := d.Release
	if have && !r.Date.IsZero() && r.Date.Before(prev.Date) {
		if !o.AllowOlderRelease {
			return &OlderReleaseError{URL: d.URL, Date: r.Date, Seen: prev.Date}
		}
		o.log().Warn("release older than one seen before, allowed", "url", d.URL, "date", r.Date, "seen", prev.Date)
		return nil
	}
	if have && prev.Codename != "" && r.Codename != "" && prev.Codename != r.Codename {
		o.log().Warn("the suite now names another release", "suite", d.Source.Suite, "was", prev.Codename, "now", r.Codename)
	}
	if !have || r.Date.After(prev.Date) || prev.Codename != r.Codename {
		if b, err := json.Marshal(seenRelease{Date: r.Date, Codename: r.Codename}); err == nil {
			if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
				return fmt.Errorf("apt: recording %s: %w", d.URL, err)
			}
		}
	}
	return nil
}
