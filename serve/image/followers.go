package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"nroot/internal/fsroot"
)

// ErrMissingMode: a node following the published generation boots a
// root mode (inventory root=) that the generation to publish lacks.
var ErrMissingMode = errors.New("generation lacks a node's root mode")

// nodesFile is what nroot pxe writes into the image (serve/pxe's
// IndexFile): the nodes it configured, each with its root mode and the
// generation it follows.
const nodesFile = "nodes.json"

// maxNodesFile bounds the nodes file read.
const maxNodesFile = 64 << 20

// follower is the part of a nodes file entry publish needs.
type follower struct {
	Name       string `json:"name"`
	Generation string `json:"generation"` // "published" or a pinned number
	Root       string `json:"root"`
}

// followers reads the nodes nroot pxe configured to boot the published
// generation; none when pxe has not run for the image.
func (im Image) followers() ([]follower, error) {
	p := filepath.Join(im.Dir, nodesFile)
	b, err := fsroot.ReadHostFile(p, maxNodesFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ix struct {
		Nodes []follower `json:"nodes"`
	}
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var out []follower
	for _, n := range ix.Nodes {
		if n.Generation == "published" {
			out = append(out, n)
		}
	}
	return out, nil
}

// bootsFollowers refuses generation g when a node following the
// published generation boots a root mode g has no image for: publishing
// it would stop those nodes' boots (or, for a generation made before
// root modes, boot them from the tree instead).
func (im Image) bootsFollowers(g *Generation) error {
	fs, err := im.followers()
	if err != nil {
		return err
	}
	lacking := map[string][]string{}
	var modes []string
	for _, n := range fs {
		if g.Boots(n.Root) {
			continue
		}
		if _, ok := lacking[n.Root]; !ok {
			modes = append(modes, n.Root)
		}
		lacking[n.Root] = append(lacking[n.Root], n.Name)
	}
	if len(modes) == 0 {
		return nil
	}
	m := modes[0]
	return fmt.Errorf("%s: generation %d: %w: %s boot%s root=%s (%s), which it has no image for (it boots %s); make one with nroot image update --fsimage, or change their root= and run nroot pxe again",
		im.Dir, g.ID, ErrMissingMode, strings.Join(lacking[m], ","), plural(len(lacking[m])), m, filepath.Join(im.Dir, nodesFile), strings.Join(g.Modes(), ","))
}

func plural(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}
