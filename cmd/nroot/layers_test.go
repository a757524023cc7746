package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layerOf is docs/architecture.md's table: a package may import from its
// own layer or below.
func layerOf(pkg string) int {
	top, _, _ := strings.Cut(pkg, "/")
	switch top {
	case "internal":
		return 0
	case "format":
		return 1
	case "build":
		return 2
	case "node":
		return 3
	case "serve":
		return 4
	case "verify":
		return 5
	}
	return 6 // cmd, e2e
}

// TestLayers: no non-test file imports a package of a higher layer, and
// internal/ imports no domain package.
func TestLayers(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		seen++
		for _, im := range f.Imports {
			p := strings.Trim(im.Path.Value, `"`)
			dep, ok := strings.CutPrefix(p, "nroot/")
			if !ok {
				continue
			}
			if layerOf(dep) > layerOf(rel) {
				t.Errorf("%s imports %s, a higher layer (docs/architecture.md)", rel, dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 100 {
		t.Fatalf("read %d files; the walk missed the module", seen)
	}
}
