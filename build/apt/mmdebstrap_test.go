package apt_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nroot/build/apt"
	"nroot/e2e/testenv"
	"nroot/internal/fetch"
)

// TestResolveMatchesMmdebstrap builds real roots with mmdebstrap and
// checks that nroot selects exactly the packages it installed, by name,
// version and architecture.
func TestResolveMatchesMmdebstrap(t *testing.T) {
	testenv.Root(t)
	mmdebstrap := testenv.Command(t, "mmdebstrap")
	for _, suite := range testenv.CompareSuites() {
		for _, variant := range testenv.CompareVariants() {
			t.Run(suite+"/"+variant, func(t *testing.T) {
				mirror, extra := testenv.Archive(t, apt.SuiteDistribution(suite) == apt.Ubuntu, apt.HostArch())
				line := "deb " + mirror + " " + suite + " main"
				dir := filepath.Join(t.TempDir(), "root")
				args := append([]string{"--quiet", "--mode=root", "--format=directory", "--variant=" + variant}, extra...)
				cmd := exec.Command(mmdebstrap, append(args, suite, dir, line)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("mmdebstrap: %v\n%s", err, out)
				}
				out, err := exec.Command("dpkg-query", "--admindir="+dir+"/var/lib/dpkg", "-W", "-f", "${Package}\t${Version}\t${Architecture}\n").Output()
				if err != nil {
					t.Fatalf("dpkg-query: %v", err)
				}
				want := strings.Split(strings.TrimSpace(string(out)), "\n")
				slices.Sort(want)

				src, err := apt.ParseSourceArg(line, suite, nil)
				if err != nil {
					t.Fatal(err)
				}
				o := apt.Options{Fetcher: fetch.NewFetcher(cacheDir(t))}
				u, err := apt.Load(context.Background(), []*apt.Source{src}, []string{apt.HostArch()}, o)
				if err != nil {
					t.Fatal(err)
				}
				res, err := u.Resolve(apt.Request{Variant: variant, SeedSuite: suite})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, p := range res.Packages {
					got = append(got, p.Name+"\t"+p.Version+"\t"+p.Architecture)
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					for _, w := range want {
						if !slices.Contains(got, w) {
							t.Errorf("mmdebstrap has %q, nroot does not", w)
						}
					}
					for _, g := range got {
						if !slices.Contains(want, g) {
							t.Errorf("nroot has %q, mmdebstrap does not", g)
						}
					}
				}
				t.Logf("%s %s: %d packages agree", suite, variant, len(got))
			})
		}
	}
}

// cacheDir shares the index cache between test runs, as nroot shares it
// between builds.
func cacheDir(t testing.TB) string {
	if d := os.Getenv("NROOT_TEST_CACHE"); d != "" {
		return d
	}
	return fetch.DefaultCacheDir()
}

// TestResolveStableDefaults is `nroot resolve stable` as a new user runs
// it: mirror from the host, aliases resolved, -updates and -security added.
func TestResolveStableDefaults(t *testing.T) {
	testenv.Mirror(t)
	o := apt.Options{Fetcher: fetch.NewFetcher(cacheDir(t))}
	plan, err := apt.Resolve(context.Background(), apt.Config{Suite: "stable", Variant: "minbase"}, o)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Codename == "" || plan.Codename == "stable" {
		t.Fatalf("codename %q: the alias was not resolved", plan.Codename)
	}
	var suites []string
	for _, s := range plan.Sources {
		suites = append(suites, s.Suite)
		if len(s.InReleaseSHA256) != 64 || len(s.Signer) != 40 {
			t.Errorf("source %s: not recorded as verified: %+v", s.Suite, s)
		}
	}
	if !slices.Contains(suites, plan.Codename+"-updates") || !slices.Contains(suites, plan.Codename+"-security") {
		t.Errorf("sources %v lack -updates or -security", suites)
	}
	names := map[string]bool{}
	for _, p := range plan.Packages {
		names[p.Name] = true
		if len(p.SHA256) != 64 || p.Size <= 0 || !strings.HasPrefix(p.Filename, "pool/") {
			t.Errorf("package %s: incomplete: %+v", p.Name, p)
		}
	}
	for _, must := range []string{"base-files", "dpkg", "apt", "libc6", "bash"} {
		if !names[must] {
			t.Errorf("minbase lacks %s", must)
		}
	}
	if plan.Keyrings[0].Name != "debian" || len(plan.Keyrings[0].Fingerprints) == 0 {
		t.Errorf("keyrings not recorded: %+v", plan.Keyrings)
	}
}
