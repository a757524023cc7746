package apt

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"nroot/format/keyring"
	"nroot/internal/fetch"
)

// hostileArchive serves signed suites that a test can change between
// requests: drop a pocket, drop an index, replay an older Release.
type hostileArchive struct {
	t      *testing.T
	srv    *httptest.Server
	signer *testSigner
	mu     sync.Mutex
	files  map[string][]byte
}

func newHostileArchive(t *testing.T) *hostileArchive {
	a := &hostileArchive{t: t, signer: newTestSigner(t, "archive"), files: map[string][]byte{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		b, ok := a.files[strings.TrimPrefix(r.URL.Path, "/")]
		a.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// suite publishes a suite with one Packages.gz, its Release signed with
// hash h, dated date.
func (a *hostileArchive) suite(name, origin, codename string, date time.Time, h crypto.Hash) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(testPackages))
	w.Close()
	idx := "main/binary-amd64/Packages.gz"
	rel := fmt.Sprintf("Origin: %s\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: amd64\nComponents: main\nSHA256:\n %s %d %s\n",
		origin, name, codename, date.UTC().Format(time.RFC1123), sum(gz.Bytes()), gz.Len(), idx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.files["dists/"+name+"/"+idx] = gz.Bytes()
	if h == crypto.SHA1 || h == crypto.SHA224 {
		// go-crypto will not write these any more; an old or hostile
		// archive still can: a detached signature made by hand.
		priv := a.signer.entity.PrivateKey
		sig := &packet.Signature{SigType: packet.SigTypeBinary, PubKeyAlgo: priv.PubKeyAlgo, Hash: h,
			CreationTime: time.Now().Add(-time.Minute), IssuerKeyId: &priv.KeyId}
		hh, err := sig.PrepareSign(nil)
		if err != nil {
			a.t.Fatal(err)
		}
		hh.Write([]byte(rel))
		var out bytes.Buffer
		deterministic := false
		if err := sig.Sign(hh, priv, &packet.Config{NonDeterministicSignaturesViaNotation: &deterministic}); err != nil {
			a.t.Fatal(err)
		}
		if err := sig.Serialize(&out); err != nil {
			a.t.Fatal(err)
		}
		delete(a.files, "dists/"+name+"/InRelease")
		a.files["dists/"+name+"/Release"] = []byte(rel)
		a.files["dists/"+name+"/Release.gpg"] = out.Bytes()
		return
	}
	var out bytes.Buffer
	cw, err := clearsign.Encode(&out, a.signer.entity.PrivateKey, &packet.Config{DefaultHash: h})
	if err != nil {
		a.t.Fatal(err)
	}
	cw.Write([]byte(rel))
	if err := cw.Close(); err != nil {
		a.t.Fatal(err)
	}
	a.files["dists/"+name+"/InRelease"] = out.Bytes()
}

func (a *hostileArchive) drop(path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.files, path)
}

func (a *hostileArchive) options(t *testing.T, cache string) Options {
	f := fetch.NewFetcher(cache)
	f.Retries = 0
	return Options{Fetcher: f, Keyrings: []*keyring.Keyring{a.signer.ring}}
}

// TestPockets: one mirror URL gets SUITE-updates and SUITE-security;
// a pocket that answers 404 is an error naming the flag that leaves it
// out, and leaving it out is recorded in the plan.
func TestPockets(t *testing.T) {
	now := time.Now().Add(-time.Hour)
	tests := []struct {
		name       string
		drop       string
		noSecurity bool
		noUpdates  bool
		suites     []string
		wantErr    string
	}{
		{"all there", "", false, false, []string{"noble", "noble-updates", "noble-security"}, ""},
		{"security stripped", "noble-security", false, false, nil, "--no-security"},
		{"updates stripped", "noble-updates", false, false, nil, "--no-updates"},
		{"security left out on purpose", "noble-security", true, false, []string{"noble", "noble-updates"}, ""},
		{"both left out", "", true, true, []string{"noble"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newHostileArchive(t)
			for _, s := range []string{"noble", "noble-updates", "noble-security"} {
				a.suite(s, "Ubuntu", "noble", now, crypto.SHA512)
			}
			if tt.drop != "" {
				a.drop("dists/" + tt.drop + "/InRelease")
			}
			cfg := Config{Suite: "noble", Mirrors: []string{a.srv.URL}, Variant: "custom", Include: []string{"hello"}, NoSecurity: tt.noSecurity, NoUpdates: tt.noUpdates}
			plan, err := Resolve(context.Background(), cfg, a.options(t, t.TempDir()))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range plan.Sources {
				got = append(got, s.Codename)
			}
			if !slices.Equal(got, tt.suites) {
				t.Errorf("sources %v, want %v", got, tt.suites)
			}
			if plan.NoSecurity != tt.noSecurity || plan.NoUpdates != tt.noUpdates {
				t.Errorf("plan records no_security=%v no_updates=%v", plan.NoSecurity, plan.NoUpdates)
			}
		})
	}
}

// TestIndexMissing: an index the signed Release lists that the mirror
// answers 404 for is an error, not an empty suite.
func TestIndexMissing(t *testing.T) {
	a := newHostileArchive(t)
	a.suite("noble-security", "Ubuntu", "noble", time.Now().Add(-time.Hour), crypto.SHA256)
	a.drop("dists/noble-security/main/binary-amd64/Packages.gz")
	src := &Source{URI: a.srv.URL, Suite: "noble-security", Components: []string{"main"}}
	_, err := Load(context.Background(), []*Source{src}, []string{"amd64"}, a.options(t, t.TempDir()))
	if !errors.Is(err, ErrIndexMissing) || !strings.Contains(err.Error(), "noble-security") {
		t.Fatalf("err = %v, want ErrIndexMissing naming the suite", err)
	}
}

// TestOlderReleaseRefused: once a Release has been verified, an older
// one for the same suite and mirror is refused (a rollback), naming both
// dates, unless allowed; a codename that changes behind an alias is
// reported.
func TestOlderReleaseRefused(t *testing.T) {
	a := newHostileArchive(t)
	cache := t.TempDir()
	newer := time.Now().Add(-time.Hour).Truncate(time.Second)
	older := newer.Add(-72 * time.Hour)
	src := &Source{URI: a.srv.URL, Suite: "stable", Components: []string{"main"}}
	a.suite("stable", "Debian", "trixie", newer, crypto.SHA256)
	if _, err := OpenDist(context.Background(), src, a.options(t, cache)); err != nil {
		t.Fatal(err)
	}
	a.suite("stable", "Debian", "trixie", older, crypto.SHA256)
	_, err := OpenDist(context.Background(), src, a.options(t, cache))
	var oe *OlderReleaseError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOlderRelease) {
		t.Fatalf("err = %v, want an OlderReleaseError", err)
	}
	for _, d := range []time.Time{newer, older} {
		if !strings.Contains(err.Error(), d.UTC().Format(time.RFC1123)) {
			t.Errorf("%q does not name %s", err, d.UTC().Format(time.RFC1123))
		}
	}
	o := a.options(t, cache)
	o.AllowOlderRelease = true
	if _, err := OpenDist(context.Background(), src, o); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	// Still refused without the flag: the newest seen is kept.
	if _, err := OpenDist(context.Background(), src, a.options(t, cache)); !errors.Is(err, ErrOlderRelease) {
		t.Fatalf("after an allowed rollback: err = %v", err)
	}
	// The alias moves on to a new release: accepted, and said.
	a.suite("stable", "Debian", "forky", newer.Add(time.Minute), crypto.SHA256)
	var log bytes.Buffer
	o = a.options(t, cache)
	o.Log = slog.New(slog.NewTextHandler(&log, nil))
	if _, err := OpenDist(context.Background(), src, o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "now names another release") || !strings.Contains(log.String(), "forky") {
		t.Errorf("codename change not reported: %s", log.String())
	}
}

// TestWeakSignatureRefused: a Release signed over SHA-1 (or weaker) is
// refused, as apt refuses it; SHA-256 and stronger verify.
func TestWeakSignatureRefused(t *testing.T) {
	for _, tt := range []struct {
		hash crypto.Hash
		ok   bool
	}{{crypto.SHA1, false}, {crypto.SHA224, false}, {crypto.SHA256, true}, {crypto.SHA512, true}} {
		t.Run(tt.hash.String(), func(t *testing.T) {
			a := newHostileArchive(t)
			a.suite("stable", "Debian", "trixie", time.Now().Add(-time.Hour), tt.hash)
			_, err := OpenDist(context.Background(), &Source{URI: a.srv.URL, Suite: "stable"}, a.options(t, t.TempDir()))
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, ErrWeakHash)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
