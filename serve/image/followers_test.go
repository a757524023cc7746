package image

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestPublishRefusesMissingMode: publish (and so rollback) refuses a
// generation that has no image for the root mode of a node following the
// published generation, as nroot pxe recorded it in nodes.json; pinned
// nodes, tree nodes and images without nodes.json are not in the way.
func TestPublishRefusesMissingMode(t *testing.T) {
	// Generation 2 boots nfs-squashfs too: its description says so and
	// the file is there.
	withSquashfs := func(t *testing.T, im Image) {
		meta := filepath.Join(im.genDir(2), "generation.json")
		b, err := os.ReadFile(meta)
		if err != nil {
			t.Fatal(err)
		}
		var g map[string]any
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		g["images"] = []string{"root.squashfs"}
		g["image_cmdline"] = "root=live:IMAGEURL ip=dhcp rd.neednet=1"
		if b, err = json.Marshal(g); err != nil {
			t.Fatal(err)
		}
		for f, data := range map[string][]byte{meta: b, filepath.Join(im.genDir(2), "root.squashfs"): []byte("hsqs")} {
			if err := os.WriteFile(f, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	type node struct{ Name, Generation, Root string }
	for _, c := range []struct {
		name    string
		nodes   []node // nil: no nodes.json
		publish int
		refused bool
	}{
		{"no nodes.json", nil, 1, false},
		{"tree nodes", []node{{"n1", "published", "tree"}, {"n2", "published", ""}}, 1, false},
		{"image node, generation without the image", []node{{"n1", "published", "tree"}, {"n2", "published", "nfs-squashfs"}}, 1, true},
		{"image node, generation with the image", []node{{"n2", "published", "nfs-squashfs"}}, 2, false},
		{"image node, generation with another format", []node{{"n2", "published", "http-erofs"}}, 2, true},
		{"pinned image node", []node{{"n2", "2", "nfs-squashfs"}}, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			im := Image{Dir: t.TempDir()}
			mustImport(t, im, 2)
			withSquashfs(t, im)
			if c.nodes != nil {
				var ix struct {
					Nodes []map[string]string `json:"nodes"`
				}
				for _, n := range c.nodes {
					ix.Nodes = append(ix.Nodes, map[string]string{"name": n.Name, "generation": n.Generation, "root": n.Root})
				}
				b, _ := json.Marshal(ix)
				if err := os.WriteFile(filepath.Join(im.Dir, nodesFile), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := im.Publish(c.publish)
			if got := errors.Is(err, ErrMissingMode); got != c.refused {
				t.Fatalf("publish %d: %v; refused %v, want %v", c.publish, err, got, c.refused)
			}
			pub, _ := im.Published()
			if want := map[bool]int{true: 0, false: c.publish}[c.refused]; pub != want {
				t.Errorf("published %d after publish, want %d", pub, want)
			}
		})
	}
}
