package initrd

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"nroot/e2e/testenv"
)

// tree makes a small directory tree with every entry type cpio carries.
func tree(t *testing.T, extra string) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc/cmdline.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/bin/tool"), bytes.Repeat([]byte("binary "), 5000), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/cmdline.d/nfs.conf"), []byte("rd.neednet=1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "odd"), []byte("x"), 0o711)
	os.Chmod(filepath.Join(dir, "odd"), os.ModeSetuid|0o711)
	os.Symlink("usr/bin", filepath.Join(dir, "bin"))
	os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool2"))
	if extra != "" {
		os.WriteFile(filepath.Join(dir, extra), []byte(extra), 0o644)
	}
	return dir
}

// gnuCpio archives dir with GNU cpio in the given format.
func gnuCpio(t *testing.T, dir, format string) []byte {
	testenv.Command(t, "cpio")
	cmd := exec.Command("sh", "-c", "find . | LC_ALL=C sort | cpio --quiet -o -H "+format)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	return out
}

func gnuList(t *testing.T, archive []byte) []string {
	cmd := exec.Command("cpio", "--quiet", "-t")
	cmd.Stdin = bytes.NewReader(archive)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func compress(t *testing.T, name string, data []byte) []byte {
	cmds := map[string][]string{
		"gzip": {"gzip", "-c", "-9"}, "xz": {"xz", "-c", "--check=crc32"}, "zstd": {"zstd", "-c", "-q", "-19"},
		"lz4-legacy": {"lz4", "-c", "-l", "-q"}, "lz4": {"lz4", "-c", "-q"}, "bzip2": {"bzip2", "-c"}, "lzma": {"xz", "-c", "--format=lzma"},
		"lzo": {"lzop", "-c"}, "lzo-crc32": {"lzop", "-c", "-9", "--crc32"}, "lzo-nocheck": {"lzop", "-c", "-1", "--no-checksum"},
	}
	argv := cmds[name]
	testenv.Command(t, argv[0])
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func listAll(t *testing.T, img []byte) ([]string, []Segment, error) {
	r := NewReader(bytes.NewReader(img))
	var names []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			return names, r.Segments(), nil
		}
		if err != nil {
			return names, r.Segments(), err
		}
		names = append(names, h.Name)
	}
}

// TestReadsWhatGNUCpioWrites checks every compressor and cpio format,
// alone and as the second segment after an uncompressed early archive
// with padding between, against cpio -t.
func TestReadsWhatGNUCpioWrites(t *testing.T) {
	early := gnuCpio(t, tree(t, "early_cpio"), "newc")
	for _, format := range []string{"newc", "crc", "odc"} {
		main := gnuCpio(t, tree(t, "main"), format)
		want := gnuList(t, main)
		for _, comp := range []string{"none", "gzip", "xz", "zstd", "lz4-legacy", "lz4", "bzip2", "lzma", "lzo", "lzo-crc32", "lzo-nocheck"} {
			t.Run(format+"/"+comp, func(t *testing.T) {
				seg := main
				if comp != "none" {
					seg = compress(t, comp, main)
				}
				img := append(append(bytes.Clone(early), make([]byte, 4-len(early)%4+4)...), seg...)
				// A third segment after the compressed one proves it ended
				// exactly where it should.
				img = append(img, early...)
				names, segs, err := listAll(t, img)
				if err != nil {
					t.Fatal(err)
				}
				earlyNames := gnuList(t, early)
				all := append(append(append([]string{}, earlyNames...), want...), earlyNames...)
				if !slices.Equal(names, all) {
					t.Fatalf("names:\n%v\nwant:\n%v", names, all)
				}
				// GNU cpio pads archives to 512-byte blocks; outside a
				// compressed stream that padding is between segments.
				size := int64(len(seg))
				if comp == "none" {
					size = segs[1].UncompressedSize
				}
				if len(segs) != 3 || string(segs[1].Compression) != strings.Split(comp, "-")[0] && string(segs[1].Compression) != comp || segs[1].CompressedSize != size || (comp != "none" && segs[1].UncompressedSize != int64(len(main))) {
					t.Fatalf("segments %+v (compressed %d, uncompressed %d)", segs, len(seg), len(main))
				}
			})
		}
	}
}

func TestEntryDetails(t *testing.T) {
	dir := tree(t, "")
	r := NewReader(bytes.NewReader(gnuCpio(t, dir, "crc")))
	seen := map[string]*Header{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "usr/bin/tool" || h.Name == "usr/bin/tool2" {
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			h.Size = int64(len(b))
		}
		seen[h.Name] = h
	}
	if h := seen["bin"]; h == nil || !h.IsSymlink() || h.Linkname != "usr/bin" {
		t.Errorf("bin: %+v", h)
	}
	if h := seen["odd"]; h == nil || h.Mode&0o7777 != 0o4711 {
		t.Errorf("odd: %+v", h)
	}
	a, b := seen["usr/bin/tool"], seen["usr/bin/tool2"]
	if a == nil || b == nil || a.Ino != b.Ino || a.NLink != 2 {
		t.Errorf("hard links: %+v %+v", a, b)
	}
}

func TestCorruptImages(t *testing.T) {
	main := gnuCpio(t, tree(t, ""), "crc")
	gz := compress(t, "gzip", main)
	flipped := bytes.Clone(main)
	i := bytes.Index(flipped, bytes.Repeat([]byte("binary "), 3))
	flipped[i] ^= 1
	tests := []struct {
		name    string
		img     []byte
		wantErr string
	}{
		{"bad magic", []byte("not an image at all"), "unknown data"},
		{"empty", nil, "offset 0: no cpio archive"},
		{"only padding", make([]byte, 4096), "offset 4096: no cpio archive"},
		{"truncated uncompressed", main[:len(main)/2], "truncated"},
		{"truncated gzip", gz[:len(gz)/2], "segment 0"},
		{"crc mismatch", flipped, "checksum"},
		{"lzo truncated", []byte("\x89LZO\x00\r\n\x1a\n"), "segment 0"},
		// A 13-byte lzma header that asks for a 2 GiB dictionary.
		{"lzma 2 GiB dictionary", append([]byte{0x5d, 0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, make([]byte, 419)...), "dictionary"},
		// An xz block header whose LZMA2 filter asks for 4 GiB (its
		// CRC32 right, as the header is checked first).
		{"xz 4 GiB dictionary", append([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 1, 0x69, 0x22, 0xde, 0x36, 0x02, 0x00, 0x21, 0x01, 0x28, 0, 0, 0, 0xe6, 0xa0, 0x11, 0xb3}, make([]byte, 64)...), "dictionary larger than 1 GiB"},
		{"huge size", []byte("070701" + strings.Repeat("0", 48) + "FFFFFFFF" + strings.Repeat("0", 32) + "00000002" + "00000000" + "a\x00"), "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := NewReader(bytes.NewReader(tt.img))
			var err error
			for err == nil {
				_, err = r.Next()
				if err == nil {
					_, err = io.Copy(io.Discard, r)
				}
			}
			if err == io.EOF || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			// A header of a few bytes must not make the reader
			// allocate gigabytes.
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d > 256<<20 {
				t.Errorf("reading %d bytes allocated %d MiB", len(tt.img), d>>20)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("070701" + strings.Repeat("0", 96) + "0000000B00000000TRAILER!!!\x00"))
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x24, 0, 0, 0})
	f.Add([]byte{0x02, 0x21, 0x4c, 0x18, 1, 0, 0, 0, 0})
	for _, c := range []Compression{XZ, Zstd, Gzip, LZ4Legacy} {
		var b bytes.Buffer
		z, _ := compressor(c, &b)
		w := NewWriter(z)
		w.WriteHeader(&Header{Name: "init", Mode: TypeReg | 0o755, Size: 4, NLink: 1})
		w.Write([]byte("#!/s"))
		w.Close()
		z.Close()
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for range 1000 {
			h, err := r.Next()
			if err != nil {
				return
			}
			if h.Name == "" && h.Size < 0 {
				t.Fatal("impossible header")
			}
			io.Copy(io.Discard, io.LimitReader(r, 1<<20))
		}
	})
}

// sparseData is n bytes of zeros with 4 KiB of pseudo-random bytes at
// the start of every MiB: cheap to compress, yet not only runs.
type sparseData struct {
	n, off int64
	rnd    *rand.Rand
}

func (s *sparseData) Read(p []byte) (int, error) {
	if s.off >= s.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.n-s.off)]
	for i := range p {
		p[i] = 0
	}
	for i := range p {
		if (s.off+int64(i))%(1<<20) < 4096 {
			p[i] = byte(s.rnd.Uint32())
		}
	}
	s.off += int64(len(p))
	return len(p), nil
}

// TestListingMemoryBounded lists a 1 GiB image (an early archive, then
// a zstd and a gzip segment holding 1 GiB of files) in a child process
// and checks its peak RSS stays under 64 MiB: bodies are streamed, not
// held.
func TestListingMemoryBounded(t *testing.T) {
	if img := os.Getenv("NROOT_TEST_LIST_IMAGE"); img != "" {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n := 0
		if _, err := Scan(f, func(h *Header, data io.Reader) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 2+8+4 {
			t.Fatalf("%d entries", n)
		}
		// The peak of this process's own memory: the rusage of a child
		// also counts the parent's, whose memory it shared until exec.
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				fmt.Println(l)
			}
		}
		return
	}
	if testing.Short() {
		t.Skip("writes a 1 GiB image")
	}
	path := filepath.Join(t.TempDir(), "big.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	early := NewWriter(f)
	early.WriteHeader(&Header{Name: "early_cpio", Mode: TypeReg | 0o644, Size: 2, NLink: 1})
	early.Write([]byte("1\n"))
	early.WriteHeader(&Header{Name: "kernel", Mode: TypeDir | 0o755, NLink: 2})
	if err := early.Close(); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, seg := range []struct {
		c     Compression
		files int
	}{{Zstd, 8}, {Gzip, 4}} {
		var z io.WriteCloser
		if seg.c == Gzip {
			z, err = gzip.NewWriterLevel(f, gzip.BestSpeed)
		} else {
			z, err = compressor(seg.c, f)
		}
		if err != nil {
			t.Fatal(err)
		}
		w := NewWriter(z)
		for i := range seg.files {
			size := 1<<30/12 + int64(i)
			if err := w.WriteHeader(&Header{Name: fmt.Sprintf("%s/file%d", seg.c, i), Mode: TypeReg | 0o644, Size: size, NLink: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, &sparseData{n: size, rnd: rnd}); err != nil {
				t.Fatal(err)
			}
			total += size
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if total < 1<<30 {
		t.Fatalf("only %d bytes of files", total)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestListingMemoryBounded$")
	cmd.Env = append(os.Environ(), "NROOT_TEST_LIST_IMAGE="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("listing: %v\n%s", err, out)
	}
	var kb int64
	if m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(out); m != nil {
		kb, _ = strconv.ParseInt(string(m[1]), 10, 64)
	} else {
		t.Fatalf("no VmHWM from the listing process:\n%s", out)
	}
	rss := kb << 10
	t.Logf("peak RSS listing %d bytes of files: %d MiB", total, rss>>20)
	if rss >= 64<<20 {
		t.Fatalf("peak RSS %d MiB listing a 1 GiB image, want < 64 MiB", rss>>20)
	}
}

// TestXZVariants reads xz segments as xz writes them: one block walked
// chunk by chunk (with uncompressed chunks for random data), blocks with
// their sizes in the headers (multi-threaded, as dracut runs xz), the x86
// BCJ filter before LZMA2 (nroot node --initrd=small's), and every check
// type; the Go decoder refuses a delta filter, saying to install xz. Each is the middle segment,
// so its end must be found exactly. It runs with the host's xz program
// and again, in a child process, with the Go decoder.
func TestXZVariants(t *testing.T) {
	testenv.Command(t, "xz")
	dir := tree(t, "")
	random := make([]byte, 300<<10)
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	os.WriteFile(filepath.Join(dir, "random"), random, 0o644)
	main := gnuCpio(t, dir, "newc")
	want := gnuList(t, main)
	early := gnuCpio(t, tree(t, "early_cpio"), "newc")
	for _, args := range [][]string{
		{"--check=crc32"},
		{"--check=crc32", "-T2", "--block-size=64KiB"},
		{"--check=none", "--x86", "--lzma2=preset=6"},
		{"--check=crc32", "--x86", "--lzma2=preset=6", "-T2", "--block-size=64KiB"},
		{"--check=crc32", "--delta=dist=4", "--lzma2=preset=1"},
		{"--check=crc64", "-T2", "--block-size=100000"},
		{"--check=sha256", "--lzma2=dict=1MiB"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command("xz", append([]string{"-c"}, args...)...)
			cmd.Stdin = bytes.NewReader(main)
			seg, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			img := append(append(bytes.Clone(early), seg...), early...)
			names, segs, err := listAll(t, img)
			if os.Getenv("NROOT_XZ") == "go" && slices.Contains(args, "--delta=dist=4") {
				if err == nil || !strings.Contains(err.Error(), "install the xz program") {
					t.Fatalf("Go decoder with a delta filter: %v, want the advice to install xz", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) != 3 || segs[1].Compression != XZ || segs[1].CompressedSize != int64(len(seg)) || segs[1].UncompressedSize != int64(len(main)) {
				t.Fatalf("segments %+v, xz stream of %d bytes", segs, len(seg))
			}
			if got := names[len(names)-len(want)-len(gnuList(t, early)):][:len(want)]; !slices.Equal(got, want) {
				t.Fatalf("names %v, want %v", got, want)
			}
		})
	}
	if os.Getenv("NROOT_XZ") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestXZVariants$")
		cmd.Env = append(os.Environ(), "NROOT_XZ=go")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("with the Go decoder: %v\n%s", err, out)
		}
	}
}

// TestShortPaddingAfterTrailer: inside a compressed segment, dracut's
// zero padding after the trailer may be shorter than a cpio magic (it
// depends on the names before it); every length from none to five is
// the end of the archive, not a truncation.
func TestShortPaddingAfterTrailer(t *testing.T) {
	main := gnuCpio(t, tree(t, ""), "newc")
	end := bytes.LastIndex(main, []byte("TRAILER!!!\x00"))
	if end < 0 {
		t.Fatal("no trailer")
	}
	end += len("TRAILER!!!\x00")
	end += int(pad4(int64(end)))
	want, _, err := listAll(t, main)
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k <= 5; k++ {
		for _, comp := range []string{"zstd", "gzip"} {
			img := compress(t, comp, append(bytes.Clone(main[:end]), make([]byte, k)...))
			got, segs, err := listAll(t, img)
			if err != nil || !slices.Equal(got, want) || len(segs) != 1 {
				t.Errorf("%s with %d zero bytes after the trailer: %d entries of %d, %d segments, %v", comp, k, len(got), len(want), len(segs), err)
			}
		}
	}
}
