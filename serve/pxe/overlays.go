package pxe

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"nroot/internal/atomicfile"
	"nroot/internal/fsroot"
	"nroot/node/initrd"
	"nroot/serve/identity"
	"nroot/serve/image"
	"nroot/serve/inventory"
	"nroot/serve/overlay"
)

// overlays renders each node's overlays into its identity segment.
type overlays struct {
	inv        *inventory.Inventory
	o          Options
	im         image.Image
	ca         *identity.CA
	knownHosts string
	network    map[int]string            // the writer of each generation's image
	links      map[int]map[string]string // a generation's image: directories of overlay paths that are symlinks, to their targets ("" not one)
	files      map[string][]string
}

func newOverlays(im image.Image, nodes []inventory.Node, store identity.Store, o Options) (*overlays, error) {
	ov := &overlays{inv: &inventory.Inventory{File: o.Inventory, Nodes: nodes, Groups: o.Groups}, o: o, im: im,
		network: map[int]string{}, links: map[int]map[string]string{}, files: map[string][]string{}}
	if ov.inv.Groups == nil {
		ov.inv.Groups = map[string]*inventory.Group{}
	}
	for _, n := range nodes {
		if !slices.Contains(n.Overlays, "ssh-host-cert") {
			continue
		}
		if ov.ca == nil {
			ca, err := store.EnsureCA()
			if err != nil {
				return nil, err
			}
			ov.ca = ca
			ov.knownHosts = ca.KnownHosts(nodes)
		}
	}
	return ov, nil
}

// extra is identity.Extra: the node's rendered overlays.
func (ov *overlays) extra(n inventory.Node, id *identity.Identity) ([]initrd.Record, error) {
	if len(n.Overlays) == 0 {
		return nil, nil
	}
	// A host certificate is as good as a secret: with the node's private
	// host key, which its segment holds, anyone fetching the segment
	// could pose as the node to every user trusting the CA.
	if slices.Contains(n.Overlays, "ssh-host-cert") && n.Address == "dhcp" && !ov.o.SecretsToAnyAddress {
		return nil, &inventory.Error{File: ov.o.Inventory, Line: n.Line, Field: "address", Err: fmt.Errorf("%w: node %s gets a CA-signed host certificate (overlay ssh-host-cert) but takes its address by DHCP, so nginx would serve it and the private host key to any address; give it address= or run nroot pxe --secrets-to-any-address", inventory.ErrSyntax, n.Name)}
	}
	kind, err := ov.networkOf(n)
	if err != nil {
		return nil, err
	}
	files, err := overlay.Render(ov.inv, n, overlay.Options{Dir: ov.o.Overlays, Identity: id, CA: ov.ca, Network: kind})
	if err != nil {
		return nil, overlay.NodeError(ov.inv, n, err)
	}
	if err := ov.symlinkedParents(n, files); err != nil {
		return nil, err
	}
	for _, f := range files {
		// nginx serves a segment to the node's address alone only when
		// it has one.
		if f.Secret && n.Address == "dhcp" && !ov.o.SecretsToAnyAddress {
			return nil, &inventory.Error{File: ov.o.Inventory, Line: n.Line, Field: "address", Err: fmt.Errorf("%w: node %s gets the secret %s (overlay %s) but takes its address by DHCP, so nginx would serve its segment to any address; give it address= or run nroot pxe --secrets-to-any-address", inventory.ErrSyntax, n.Name, f.Path, f.Overlay)}
		}
		if !f.Mode.IsDir() {
			ov.files[n.Name] = append(ov.files[n.Name], f.Path)
		}
	}
	return overlay.Records(files), nil
}

// genOf is the generation the node boots: its pinned one, the published
// one, or with none published yet the newest; 0 with none.
func (ov *overlays) genOf(n inventory.Node) (int, error) {
	id, err := strconv.Atoi(n.Gen)
	if n.Gen == "" {
		if id, err = ov.im.Published(); err != nil || id == 0 {
			ids, lerr := ov.im.IDs()
			if lerr != nil || len(ids) == 0 {
				return 0, nil
			}
			id, err = slices.Max(ids), nil
		}
	}
	return id, err
}

// symlinkedParents refuses an overlay path that goes through a symlink
// of the image the node boots (merged-/usr lib/ or bin/, etc/localtime):
// the identity hook copies the segment onto the root with cp -a, which
// fails there and stops the boot.
func (ov *overlays) symlinkedParents(n inventory.Node, files []overlay.File) error {
	id, err := ov.genOf(n)
	if err != nil || id == 0 {
		return err
	}
	links, ok := ov.links[id]
	if !ok {
		links = map[string]string{}
		ov.links[id] = links
	}
	var r *fsroot.Root
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	for _, f := range files {
		parts := strings.Split(f.Path, "/")
		for i := 1; i < len(parts); i++ {
			dir := strings.Join(parts[:i], "/")
			target, seen := links[dir]
			if !seen {
				if r == nil {
					if r, err = fsroot.Open(ov.im.Root(id)); err != nil {
						return fmt.Errorf("node %s: overlay %s: %w", n.Name, f.Overlay, err)
					}
				}
				target, _ = r.Readlink(dir)
				links[dir] = target
			}
			if target != "" {
				return fmt.Errorf("node %s: overlay %s: %s goes through /%s, a symlink (to %s) in generation %d's image, where the identity hook's cp -a would stop the boot: %w; give the path the link leads to", n.Name, f.Overlay, f.Path, dir, target, id, overlay.ErrOverlay)
			}
		}
	}
	return nil
}

// networkOf says how the image the node boots configures interfaces:
// its pinned generation's, the published one's, or with none published
// yet the newest's.
func (ov *overlays) networkOf(n inventory.Node) (string, error) {
	if !slices.Contains(n.Overlays, "network") {
		return "", nil
	}
	id, err := ov.genOf(n)
	if err != nil {
		return "", err
	}
	if id == 0 {
		return "", fmt.Errorf("node %s: overlay network: no generation to read the image's network configuration from (nroot image create)", n.Name)
	}
	if k, ok := ov.network[id]; ok {
		return k, nil
	}
	r, err := fsroot.Open(ov.im.Root(id))
	if err != nil {
		return "", fmt.Errorf("node %s: overlay network: %w", n.Name, err)
	}
	defer r.Close()
	ov.network[id] = overlay.DetectNetwork(r)
	return ov.network[id], nil
}

// accessLogLines log every request nginx serves the nodes: nroot status
// reads them. The format is nginx's predefined combined one:
// $remote_addr - $remote_user [$time_local] "$request" $status
// $body_bytes_sent "$http_referer" "$http_user_agent".
func accessLogLines(path string) string {
	return "    # nroot status reads this log, in nginx's predefined combined format:\n" +
		"    # $remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"\n" +
		"    access_log " + path + " combined;"
}

// IndexFile, in the image directory, lists the nodes nroot pxe wrote
// and where nginx logs their requests, for nroot status. nginx does not
// serve it.
const IndexFile = "nodes.json"

// Index is IndexFile's contents.
type Index struct {
	AccessLog string `json:"access_log"`
	Nodes     []Node `json:"nodes"`
}

func writeIndex(dir, accessLog string, nodes []Node) error {
	b, err := json.MarshalIndent(Index{AccessLog: accessLog, Nodes: nodes}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, IndexFile), append(b, '\n'), 0o644)
}

// ErrNoIndex: nroot pxe has not written the image's nodes.
var ErrNoIndex = errors.New("no nodes written for the image")

// ReadIndex reads what nroot pxe wrote for the image at dir.
func ReadIndex(dir string) (*Index, error) {
	p := filepath.Join(dir, IndexFile)
	b, err := fsroot.ReadHostFile(p, 64<<20)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w; run nroot pxe IMAGE INVENTORY first", p, ErrNoIndex)
	}
	if err != nil {
		return nil, err
	}
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &ix, nil
}
