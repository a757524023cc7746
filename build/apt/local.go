package apt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"nroot/build/deb"
	"nroot/format/control"
)

// IsLocalInclude reports whether an --include entry names a package file
// or a directory of them rather than a package, as mmdebstrap tells them
// apart: it starts with "/", "./" or "../".
func IsLocalInclude(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../")
}

// maxLocalDebs bounds the files read from one directory.
const maxLocalDebs = 4096

// SplitIncludes separates --include entries into package names and
// package files, reading each file's control paragraph and SHA256. A
// directory gives every *.deb file in it.
func SplitIncludes(include []string) (names []string, local []Local, err error) {
	for _, inc := range include {
		if IsIncludePattern(inc) {
			pat, err := ParseIncludePattern(inc)
			if err != nil {
				return nil, nil, err
			}
			names = append(names, pat...)
			continue
		}
		if !IsLocalInclude(inc) {
			names = append(names, inc)
			continue
		}
		abs, err := filepath.Abs(inc)
		if err != nil {
			return nil, nil, err
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, nil, fmt.Errorf("--include %s: %w", inc, err)
		}
		files := []string{abs}
		if fi.IsDir() {
			if files, err = filepath.Glob(filepath.Join(abs, "*.deb")); err != nil {
				return nil, nil, err
			}
			if len(files) == 0 {
				return nil, nil, fmt.Errorf("--include %s: the directory holds no .deb files", inc)
			}
			if len(files) > maxLocalDebs {
				return nil, nil, fmt.Errorf("--include %s: over %d .deb files", inc, maxLocalDebs)
			}
			sort.Strings(files)
		}
		for _, f := range files {
			l, err := readLocal(f)
			if err != nil {
				return nil, nil, fmt.Errorf("--include %s: %w", inc, err)
			}
			local = append(local, l)
		}
	}
	return names, local, nil
}

// readLocal reads a package file's control paragraph and hashes it.
func readLocal(path string) (Local, error) {
	f, err := os.Open(path)
	if err != nil {
		return Local{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Local{}, err
	}
	if !fi.Mode().IsRegular() {
		return Local{}, fmt.Errorf("%s is not a regular file", path)
	}
	r, err := deb.NewReader(f)
	if err != nil {
		return Local{}, fmt.Errorf("%s: %w", path, err)
	}
	var ctl bytes.Buffer
	if err := control.NewWriter(&ctl).Write(r.Control().Fields); err != nil {
		return Local{}, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Local{}, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Local{}, err
	}
	return Local{Path: path, Control: ctl.String(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
