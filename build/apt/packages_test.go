package apt

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

func readAllPackages(t testing.TB, in string) ([]*Package, error) {
	t.Helper()
	r := NewPackagesReader(strings.NewReader(in), "Packages")
	var out []*Package
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}

func TestPackagesReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		check   func(t *testing.T, ps []*Package)
		wantErr string
	}{
		{
			name: "fields kept",
			in: "Package: libc6\nSource: glibc\nVersion: 2.41-12\nInstalled-Size: 12345\nMaintainer: x\nArchitecture: amd64\nMulti-Arch: same\n" +
				"Depends: libgcc-s1\nBreaks: a (<< 1)\nDescription: GNU C Library\n long text\nPriority: optional\nSection: libs\n" +
				"Filename: pool/main/g/glibc/libc6.deb\nSize: 2000\nSHA256: " + strings.Repeat("ab", 32) + "\nImportant: yes\n",
			check: func(t *testing.T, ps []*Package) {
				p := ps[0]
				if p.Name != "libc6" || p.Version != "2.41-12" || p.Source != "glibc" || p.MultiArch != "same" ||
					p.Depends != "libgcc-s1" || p.Breaks != "a (<< 1)" || p.Size != 2000 || p.InstalledSize != 12345 ||
					p.Priority != "optional" || p.Section != "libs" || !p.Important || p.Essential || len(p.SHA256) != 64 {
					t.Errorf("parsed %+v", p)
				}
			},
		},
		{
			name: "wrapped relationship field and lower-case names",
			in:   "package: a\nversion: 1\narchitecture: all\nessential: yes\nDepends: b,\n c (>= 1),\n d\n",
			check: func(t *testing.T, ps []*Package) {
				if ps[0].Depends != "b, c (>= 1), d" || !ps[0].Essential || ps[0].Architecture != "all" {
					t.Errorf("parsed %+v", ps[0])
				}
			},
		},
		{
			name: "several stanzas, extra blank lines",
			in:   "\n\nPackage: a\nVersion: 1\nArchitecture: all\n\n\n\nPackage: b\nVersion: 2\nArchitecture: amd64\n",
			check: func(t *testing.T, ps []*Package) {
				if len(ps) != 2 || ps[1].Name != "b" {
					t.Errorf("parsed %d stanzas", len(ps))
				}
			},
		},
		{name: "no version", in: "Package: a\nArchitecture: all\n\n", wantErr: "Packages:1: package a has no Version"},
		{name: "no package", in: "Version: 1\n", wantErr: "stanza without a Package field"},
		{name: "bad size", in: "Package: a\nVersion: 1\nArchitecture: all\nSize: -1\n", wantErr: "Packages:4: bad number"},
		{name: "garbage line", in: "Package: a\nnonsense\n", wantErr: "Packages:2: expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := readAllPackages(t, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, ps)
		})
	}
}

func FuzzPackagesReader(f *testing.F) {
	f.Add([]byte(testPackages))
	f.Add([]byte("Package: a\nVersion: 1\nArchitecture: all\nDepends: b,\n c\n"))
	f.Add([]byte("Package: a\nSize: 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewPackagesReader(bytes.NewReader(data), "fuzz")
		for range 10000 {
			p, err := r.Next()
			if err != nil {
				return
			}
			if p.Name == "" || p.Version == "" || p.Architecture == "" || p.Size < 0 {
				t.Fatalf("accepted an incomplete stanza: %+v", p)
			}
			// The universe must take whatever the reader accepts.
			u := NewUniverse([]string{"amd64"})
			u.add(p)
			u.relations(p)
		}
	})
}

func FuzzParseRelease(f *testing.F) {
	for _, name := range []string{"debian-trixie-InRelease", "ubuntu-jammy-InRelease"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte("Suite: x\nSHA256:\n 0 1 a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRelease(data)
		if err != nil {
			return
		}
		for path, fh := range r.Files {
			if len(fh.SHA256) != 64 || fh.Size < 0 || path == "" {
				t.Fatalf("accepted a bad file entry: %+v", fh)
			}
		}
	})
}

// FuzzVersion checks the version ordering nroot relies on from
// pault.ag/go/debian: total, antisymmetric and consistent with equality.
func FuzzVersion(f *testing.F) {
	for _, s := range [][2]string{{"1.0", "1.0-1"}, {"1:1.0", "2.0"}, {"1.0~rc1", "1.0"}, {"2.41-12+deb13u1", "2.41-12"}, {"1.0+b1", "1.0"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, errA := version.Parse(a)
		vb, errB := version.Parse(b)
		if errA != nil || errB != nil {
			return
		}
		ab, ba := version.Compare(va, vb), version.Compare(vb, va)
		if (ab > 0) != (ba < 0) || (ab == 0) != (ba == 0) {
			t.Fatalf("Compare(%q,%q)=%d but Compare(%q,%q)=%d", a, b, ab, b, a, ba)
		}
		if version.Compare(va, va) != 0 {
			t.Fatalf("%q is not equal to itself", a)
		}
	})
}

// FuzzDependency checks that relationship fields nroot hands to
// pault.ag/go/debian parse without panicking and give named possibilities.
func FuzzDependency(f *testing.F) {
	for _, s := range []string{"libc6 (>= 2.34), perl:any | awk", "a [amd64] <!nocheck>", "b (<< 1:2.0~rc1)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := dependency.Parse(s)
		if err != nil {
			return
		}
		for _, rel := range d.Relations {
			for _, p := range rel.Possibilities {
				if !p.Substvar && p.Name == "" {
					t.Fatalf("%q gave a possibility without a name", s)
				}
			}
		}
	})
}

func FuzzVerifyInRelease(f *testing.F) {
	f.Add(readFixture(f, "debian-bookworm-InRelease"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n\nx\n-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"))
	kr := mustNamed(f, "debian")
	f.Fuzz(func(t *testing.T, data []byte) {
		signed, err := VerifyInRelease(data, kr, fixedNow)
		if err != nil {
			return
		}
		// Only the archive's own text can verify: whatever passes must
		// parse as the real Release did.
		if _, err := ParseRelease(signed.Text); err != nil {
			t.Fatalf("verified text does not parse: %v", err)
		}
	})
}
