package decompress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func compress(t *testing.T, f Format, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	switch f {
	case None:
		return data
	case Gzip:
		w = gzip.NewWriter(&b)
	case XZ:
		w, err = xz.NewWriter(&b)
	case Zstd:
		w, err = zstd.NewWriter(&b)
	default:
		t.Fatalf("no encoder for %s", f)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readers are the ways nroot decodes a stream: the Go decoders, and for
// xz the host's program.
func readers(t *testing.T) map[string]func(Format, io.Reader) (io.ReadCloser, error) {
	m := map[string]func(Format, io.Reader) (io.ReadCloser, error){"go": NewReader}
	path, err := exec.LookPath("xz")
	if err != nil {
		if os.Getenv("CI") == "true" { // testenv imports apt, which imports this package
			t.Fatal("required component missing (CI=true): xz (package xz-utils)")
		}
		t.Log("no xz program: testing the Go decoders only")
		return m
	}
	m["program"] = func(f Format, r io.Reader) (io.ReadCloser, error) {
		if f != XZ {
			return NewReader(f, r)
		}
		return startProgram(path, xzDecode, r)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	data := []byte(strings.Repeat("Package: nroot\nVersion: 1.0\n\n", 20000))
	for name, open := range readers(t) {
		for _, f := range []Format{None, Gzip, XZ, Zstd} {
			t.Run(name+"/"+string(f), func(t *testing.T) {
				r, err := open(f, bytes.NewReader(compress(t, f, data)))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("got %d bytes, want %d", len(got), len(data))
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestDamagedStream(t *testing.T) {
	// Text with little repetition, so that every compressed byte matters.
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = "abcdefghijklmnopqrstuvwxyz \n"[rng.IntN(28)]
	}
	for name, open := range readers(t) {
		for _, f := range []Format{Gzip, XZ, Zstd} {
			good := compress(t, f, data)
			cases := map[string][]byte{
				"truncated": good[:len(good)/2],
				"flipped":   append(append(append([]byte(nil), good[:len(good)/2]...), good[len(good)/2]^0xff), good[len(good)/2+1:]...),
			}
			for cname, bad := range cases {
				t.Run(name+"/"+string(f)+"/"+cname, func(t *testing.T) {
					r, err := open(f, bytes.NewReader(bad))
					if err == nil {
						_, err = io.ReadAll(r)
						r.Close()
					}
					if err == nil {
						t.Fatal("damaged stream decoded without an error")
					}
				})
			}
		}
	}
}

// A stream closed before its end stops the program and reaps it.
func TestProgramClosedEarly(t *testing.T) {
	path, err := exec.LookPath("xz")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("required component missing (CI=true): xz (package xz-utils)")
		}
		t.Skip("no xz program")
	}
	data := bytes.Repeat([]byte("x"), 64<<20)
	p, err := startProgram(path, xzDecode, bytes.NewReader(compress(t, XZ, data)))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(p, buf); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if p.cmd.ProcessState == nil {
		t.Fatal("xz was not waited for")
	}
	if _, err := p.Read(buf); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

// An xz stream whose header asks for a 1.5 GiB dictionary (one byte of
// content, from xz --lzma2=dict=1536MiB) is refused by every reader, the
// Go decoder before it allocates, the xz program by its memory limit,
// with the complaint on one line.
func TestXZRefusesHugeDictionary(t *testing.T) {
	stream := []byte{
		0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6, 0xb4, 0x46,
		0x02, 0x00, 0x21, 0x01, 0x25, 0x00, 0x00, 0x00, 0x3b, 0x78, 0x7b, 0x41,
		0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x64, 0x23, 0x39, 0x33,
		0x2d, 0x10, 0x88, 0x1c, 0x00, 0x01, 0x19, 0x01, 0xa5, 0x2c, 0x81, 0xcc,
		0x1f, 0xb6, 0xf3, 0x7d, 0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x59, 0x5a,
	}
	tests := []struct {
		name    string
		program bool
		open    func(io.Reader) (io.ReadCloser, error)
		want    string
	}{
		{"go decoder", false, func(r io.Reader) (io.ReadCloser, error) { return NewReader(XZ, r) }, "dictionary larger than 1 GiB"},
		{"stream reader", true, func(r io.Reader) (io.ReadCloser, error) { return NewStreamReader(XZ, r) }, "Memory usage limit"},
		{"parallel reader", true, func(r io.Reader) (io.ReadCloser, error) { return NewParallelXZReader(r) }, "Memory usage limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.program && xzProgram() == "" {
				if os.Getenv("CI") == "true" {
					t.Fatal("required component missing (CI=true): xz (package xz-utils)")
				}
				t.Skip("no xz program")
			}
			r, err := tt.open(bytes.NewReader(stream))
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want %q on one line", err, tt.want)
			}
			if !tt.program && !errors.Is(err, ErrDictTooLarge) {
				t.Errorf("err = %v is not ErrDictTooLarge", err)
			}
		})
	}
}
