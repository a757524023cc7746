package apt

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"nroot/internal/fetch"
)

// The distributions nroot knows by their suite names. A mirror serves
// one of them; a suite of the other is a mistake worth one clear line
// before anything is resolved.
const (
	Debian = "Debian"
	Ubuntu = "Ubuntu"
)

// debianSuites and ubuntuSuites are the codenames and aliases each
// distribution has published. A name missing here is not an error: it is
// only not recognised early.
var (
	debianSuites = []string{
		"buzz", "rex", "bo", "hamm", "slink", "potato", "woody", "sarge", "etch", "lenny",
		"squeeze", "wheezy", "jessie", "stretch", "buster", "bullseye", "bookworm", "trixie",
		"forky", "duke", "sid", "experimental",
		"stable", "testing", "unstable", "oldstable", "oldoldstable",
	}
	ubuntuSuites = []string{
		"warty", "hoary", "breezy", "dapper", "edgy", "feisty", "gutsy", "hardy", "intrepid",
		"jaunty", "karmic", "lucid", "maverick", "natty", "oneiric", "precise", "quantal",
		"raring", "saucy", "trusty", "utopic", "vivid", "wily", "xenial", "yakkety", "zesty",
		"artful", "bionic", "cosmic", "disco", "eoan", "focal", "groovy", "hirsute", "impish",
		"jammy", "kinetic", "lunar", "mantic", "noble", "oracular", "plucky", "questing",
		"resolute",
	}
)

// suiteSuffixes are the pockets a base suite name carries.
var suiteSuffixes = []string{"-updates", "-security", "-backports", "-proposed", "-proposed-updates", "/updates"}

// SuiteDistribution names the distribution a suite belongs to (Debian or
// Ubuntu), or "" for a name nroot does not know.
func SuiteDistribution(suite string) string {
	base := strings.ToLower(suite)
	for _, s := range suiteSuffixes {
		base = strings.TrimSuffix(base, s)
	}
	switch {
	case slices.Contains(debianSuites, base):
		return Debian
	case slices.Contains(ubuntuSuites, base):
		return Ubuntu
	}
	return ""
}

// ArchiveMismatchError says a suite of one distribution was asked of a
// mirror of the other.
type ArchiveMismatchError struct {
	Suite   string // as asked
	Want    string // the suite's distribution
	Mirror  string
	From    string // where the mirror came from: "command line", NROOT_MIRROR, a sources file
	Archive string // what the mirror is, when it could be told; "" otherwise
}

func (e *ArchiveMismatchError) Error() string {
	what := "does not carry it"
	if e.Archive != "" {
		what = "is " + article(e.Archive) + " " + e.Archive + " archive"
	}
	return fmt.Sprintf("suite %s is %s %s release, but the mirror %s (from %s) %s; pass %s %s mirror URL as MIRROR (nroot bootstrap %s TARGET http://MIRROR/%s)",
		e.Suite, article(e.Want), e.Want, e.Mirror, e.From, what, article(e.Want), e.Want, e.Suite, strings.ToLower(e.Want))
}

func article(word string) string {
	if word != "" && strings.ContainsRune("AEIOUaeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// probeSuites are suites each distribution's archives (ports included)
// always carry, used to tell what a mirror is when it lacks a suite.
var probeSuites = map[string]string{Debian: "sid", Ubuntu: "noble"}

// archiveOf tells whether a mirror is a Debian or an Ubuntu archive by
// asking for a suite that each always carries. Only the status is used,
// never the content, so nothing unverified is trusted.
func archiveOf(ctx context.Context, f *fetch.Fetcher, mirror string) string {
	for _, d := range []string{Debian, Ubuntu} {
		u := strings.TrimRight(mirror, "/") + "/dists/" + probeSuites[d] + "/InRelease"
		if f.Exists(ctx, u) {
			return d
		}
	}
	return ""
}

// checkArchive turns the failure to open a suite, or a suite that opened
// with the other distribution's Origin, into an ArchiveMismatchError when
// the suite's name says which distribution it belongs to.
func checkArchive(ctx context.Context, f *fetch.Fetcher, src *Source, from string, d *Dist, openErr error) error {
	want := SuiteDistribution(src.Suite)
	if want == "" {
		return openErr
	}
	if openErr == nil {
		if o := d.Release.Origin; (o == Debian || o == Ubuntu) && o != want {
			return &ArchiveMismatchError{Suite: src.Suite, Want: want, Mirror: src.URI, From: from, Archive: o}
		}
		return nil
	}
	if !fetch.IsNotFound(openErr) {
		return openErr
	}
	got := archiveOf(ctx, f, src.URI)
	if got == want {
		return openErr // the right archive, without this suite: the 404 says it
	}
	return &ArchiveMismatchError{Suite: src.Suite, Want: want, Mirror: src.URI, From: from, Archive: got}
}
