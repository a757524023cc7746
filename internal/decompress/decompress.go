// Package decompress opens the compressed streams of archive indices and
// .deb members, chosen by file extension. (Initramfs segments, found by
// magic and needing exact stream ends, are initrd's own.)
package decompress

import (
	"bufio"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Format names a compression.
type Format string

// Formats nroot reads.
const (
	None  Format = "none"
	Gzip  Format = "gzip"
	XZ    Format = "xz"
	Zstd  Format = "zstd"
	Bzip2 Format = "bzip2"
)

// ByExt maps a file extension (".xz", "" for none) to its format.
func ByExt(ext string) (Format, error) {
	switch ext {
	case "":
		return None, nil
	case ".gz":
		return Gzip, nil
	case ".xz":
		return XZ, nil
	case ".zst":
		return Zstd, nil
	case ".bz2":
		return Bzip2, nil
	}
	return "", fmt.Errorf("unsupported compression %q", ext)
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error {
	if r.close == nil {
		return nil
	}
	return r.close()
}

// NewReader decompresses r. The decoders make many small reads, so r is
// buffered: unbuffered, xz runs about ten times slower. Closing the
// result does not close r.
func NewReader(f Format, r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	switch f {
	case None:
		return readCloser{Reader: r}, nil
	case Gzip:
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return readCloser{z, z.Close}, nil
	case XZ:
		// nroot's own decoder (xzdecode.go): LZMA2, with the x86
		// filter or without, a dictionary over MaxDict refused.
		return readCloser{Reader: newXZReader(br)}, nil
	case Zstd:
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, err
		}
		return readCloser{z, func() error { z.Close(); return nil }}, nil
	case Bzip2:
		return readCloser{Reader: bzip2.NewReader(br)}, nil
	}
	return nil, fmt.Errorf("unsupported compression %q", f)
}
