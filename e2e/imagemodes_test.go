//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"nroot/build/fsimage"
	"nroot/node"
	"nroot/node/dracut"
	"nroot/serve/export"
	"nroot/serve/inventory"
)

// A suite's node boots its root several ways at once, each in its own
// QEMU: the tree over NFS ("tree"), and the root written as an image
// file, loop-mounted from the NFS export of the images' directory
// ("nfs-squashfs", "nfs-erofs") or fetched over HTTP from a private nginx
// ("http-squashfs", "http-erofs").

// defaultModes are the root modes each suite boots in make e2e, all at
// once. The erofs boots over HTTP: from RAM it was the quickest of noble's
// three (375 s against 412 and 439 s, on a loaded host), where trixie's
// erofs over NFS, read in small clusters, took 356 s against 253 s for
// its squashfs. The tree of every suite boots in make e2e-full, and
// bookworm's in the cluster test.
var defaultModes = map[string][]string{
	"trixie": {"nfs-squashfs", "http-squashfs"},
	"noble":  {"nfs-squashfs", "http-squashfs", "http-erofs"},
}

// suiteModes are the root modes a suite boots: NROOT_E2E_MODES (a comma
// list) for every suite when set, else defaultModes, else the tree.
func suiteModes(t *testing.T, name string) []string {
	modes := defaultModes[name]
	if s := os.Getenv("NROOT_E2E_MODES"); s != "" {
		modes = strings.Split(s, ",")
	}
	if len(modes) == 0 {
		modes = []string{"tree"}
	}
	for _, m := range modes {
		if !slices.Contains(inventory.RootModes, m) {
			t.Fatalf("NROOT_E2E_MODES: root mode %q: want one of %s", m, strings.Join(inventory.RootModes, ", "))
		}
	}
	return modes
}

// imageMode splits an image mode of inventory.RootModes (not the tree)
// into its transport and format.
func imageMode(mode string) (overNFS bool, f fsimage.Format, ok bool) {
	transport, format, ok := strings.Cut(mode, "-")
	return transport == "nfs", fsimage.Format(format), ok
}

// smallInitrd are the suites make e2e builds with nroot node
// --initrd=small, the image nodes are meant to boot (dracut's shell /init,
// xz): trixie's, at 14.9 MB. The full image, the default, boots in the
// cluster (bookworm) and on noble.
var smallInitrd = map[string]bool{"trixie": true}

// smallGoal is the most a trixie node's small initramfs may weigh.
const smallGoal = 15_000_000

// initrdFor is the --initrd mode a suite's node is built with:
// NROOT_E2E_INITRD (small or full) for every suite, else smallInitrd's.
func initrdFor(suite string) string {
	if m := os.Getenv("NROOT_E2E_INITRD"); m != "" {
		return m
	}
	if smallInitrd[suite] {
		return node.InitrdSmall
	}
	return node.InitrdFull
}

// imageFile is one image file of the root.
type imageFile struct {
	format fsimage.Format
	path   string
	size   int64
}

// imagesPseudo is where nodes mount the directory of a suite's image
// files over NFSv4; nginx serves it at its root.
const imagesPseudo = "/images"

// writeImages writes root in each format the modes boot into dir
// (root.squashfs, root.erofs), as nroot fsimage does.
func writeImages(ctx context.Context, t *testing.T, st *stages, modes []string, root, dir string) map[fsimage.Format]*imageFile {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[fsimage.Format]*imageFile{}
	for _, m := range modes {
		_, f, ok := imageMode(m)
		if !ok || files[f] != nil {
			continue
		}
		file := &imageFile{format: f, path: filepath.Join(dir, "root."+string(f))}
		st.run("fsimage-"+string(f), func() error {
			info, err := fsimage.Write(ctx, root, file.path, fsimage.Options{Format: f})
			if err != nil {
				return err
			}
			file.size = info.Bytes
			st.times[string(f)+"-mb"] = float64(info.Bytes) / 1e6
			t.Logf("root as %s: %d bytes, %d entries, in %.1fs", f, info.Bytes, info.Entries, info.Seconds)
			return nil
		})
		files[f] = file
	}
	return files
}

// verifyImageFormats checks the initramfs for what each image format the
// modes boot needs beyond squashfs (erofs's driver).
func verifyImageFormats(st *stages, modes []string, root string, k node.Kernel) {
	if slices.ContainsFunc(modes, func(m string) bool { return strings.HasSuffix(m, "-"+string(fsimage.EROFS)) }) {
		st.run("initrd-erofs", func() error {
			f, err := os.Open(filepath.Join(root, k.Initrd))
			if err != nil {
				return err
			}
			defer f.Close()
			checks, _, err := dracut.Verify(f, dracut.Options{ImageNFS: true, ImageHTTP: true, ImageFormat: string(fsimage.EROFS), Kver: k.Version, Rootfs: root})
			if err != nil {
				return err
			}
			return firstFailed(checks)
		})
	}
}

// imageHTTP is a private nginx on 127.0.0.1 serving a directory, which
// nodes reach at 10.0.2.2 through QEMU's user network; its access log
// has each request's status and body bytes sent.
type imageHTTP struct {
	port    int
	dir     string // nginx's own: configuration, logs, temporary files
	logPath string
}

// serveImages runs nginx over files until the test ends.
func serveImages(t *testing.T, work, files string) (*imageHTTP, error) {
	s := &imageHTTP{dir: filepath.Join(work, "images-nginx")}
	s.logPath = filepath.Join(s.dir, "access.log")
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.port = port
	// nginx's workers run as root: the image files are the root's
	// owner's alone (0600).
	block := filepath.Join(s.dir, "images.conf")
	if err := os.WriteFile(block, fmt.Appendf(nil, `log_format files '$remote_addr "$request" $status $body_bytes_sent';
server {
    listen 127.0.0.1:%d;
    root %s;
    access_log %s files;
}
`, s.port, files, s.logPath), 0o644); err != nil {
		return nil, err
	}
	stop, err := runNginx(filepath.Join(s.dir, "nginx"), block, s.port)
	if err != nil {
		return nil, err
	}
	t.Cleanup(stop)
	return s, nil
}

// accessLine is a line of imageHTTP's access log.
var accessLine = regexp.MustCompile(`^\S+ "GET (\S+) HTTP/[0-9.]+" ([0-9]{3}) ([0-9]+)$`)

// sent checks that nginx's access log shows urlPath fetched whole: a GET
// answered 200 with size body bytes.
func (s *imageHTTP) sent(urlPath string, size int64) error {
	f, err := os.Open(s.logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return err
	}
	var seen []string
	for _, line := range strings.Split(string(b), "\n") {
		m := accessLine.FindStringSubmatch(line)
		if m == nil || m[1] != urlPath {
			continue
		}
		if m[2] == "200" && m[3] == fmt.Sprint(size) {
			return nil
		}
		seen = append(seen, line)
	}
	return fmt.Errorf("nginx's access log shows no GET %s answered 200 with all its %d bytes (its requests of it: %s)", urlPath, size, orNone(seen))
}

// suiteBoot is one of a suite's boots: its root mode, the kernel command
// line and what it must show beyond booted.
type suiteBoot struct {
	mode     string
	cmdline  string
	powerOff bool
	check    func(probe) error
}

// suiteBoots are the boots of modes: the tree (cfg's line; it powers off
// by itself) and each image mode, from nroot export's lines for its file.
func suiteBoots(root string, modes []string, tree *export.Config, files map[fsimage.Format]*imageFile, web *imageHTTP) ([]suiteBoot, error) {
	var boots []suiteBoot
	for _, m := range modes {
		if m == "tree" {
			boots = append(boots, suiteBoot{mode: m, cmdline: tree.Cmdline, powerOff: true})
			continue
		}
		overNFS, format, _ := imageMode(m)
		file := files[format]
		base := filepath.Base(file.path)
		o := export.Options{Server: userNetHost, Path: "/node", Ganesha: true, Image: file.path, ImagePath: imagesPseudo}
		if web != nil {
			o.HTTP = fmt.Sprintf("http://%s:%d/%s", userNetHost, web.port, base)
		}
		cfg, err := export.Render(root, o)
		if err != nil {
			return nil, err
		}
		b := suiteBoot{mode: m}
		if overNFS {
			if want := "root=live:nfs4:" + userNetHost + ":" + imagesPseudo + "/" + base + " "; !strings.HasPrefix(cfg.CmdlineNFSImg, want) {
				return nil, fmt.Errorf("nroot export gives %q for the image over NFS, want it to start %q", cfg.CmdlineNFSImg, want)
			}
			b.cmdline = cfg.CmdlineNFSImg
			b.check = func(p probe) error { return imageRoot(p, base, userNetHost) }
		} else {
			b.cmdline = cfg.CmdlineHTTP
			b.check = func(p probe) error {
				if err := imageRoot(p, base, ""); err != nil {
					return err
				}
				return web.sent("/"+base, file.size)
			}
		}
		boots = append(boots, b)
	}
	return boots, nil
}

// needsHTTP says whether any of modes fetches its image over HTTP.
func needsHTTP(modes []string) bool {
	return slices.ContainsFunc(modes, func(m string) bool { return strings.HasPrefix(m, "http-") })
}

// bootAtOnce boots a suite's nodes at once, each in its own QEMU, and
// checks each: booted, the image's kernel, and its own check. Each
// boot's findings are logged, and a failed one's serial log's end.
func bootAtOnce(ctx context.Context, t *testing.T, st *stages, work, root string, k node.Kernel, boots []suiteBoot) {
	st.run("boots", func() error {
		type result struct {
			p   probe
			err error
		}
		res := make([]result, len(boots))
		var wg sync.WaitGroup
		for i, b := range boots {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := boot(ctx, vm{kernel: filepath.Join(root, k.Vmlinuz), initrd: filepath.Join(root, k.Initrd), powerOff: b.powerOff, timeout: 30 * time.Minute},
					b.cmdline+" console=ttyS0", filepath.Join(work, "serial-"+b.mode+".log"))
				switch {
				case err != nil:
				case p.booted(root) != nil:
					err = p.booted(root)
				case p.kernel != k.Version:
					err = fmt.Errorf("the node runs kernel %s, not the image's %s", p.kernel, k.Version)
				case b.check != nil:
					err = b.check(p)
				}
				res[i] = result{p, err}
			}()
		}
		wg.Wait()
		var errs []error
		for i, b := range boots {
			logBoot(t, st, b.mode, res[i].p)
			t.Logf("boot %s: root loop %q; NFS volumes %s", b.mode, res[i].p.rootLoop, orNone(res[i].p.nfsVolumes))
			if res[i].err != nil {
				t.Logf("boot %s: last 80 lines of its serial log:\n%s", b.mode, lastLines(filepath.Join(work, "serial-"+b.mode+".log"), 80))
				errs = append(errs, fmt.Errorf("boot %s: %w", b.mode, res[i].err))
			}
		}
		return errors.Join(errs...)
	})
}

// imageRoot checks that a node's root is the image file named base: the
// first loop device is backed by it and, with server, that file is on an
// NFS volume of server (the initramfs's mount, gone from the mount table
// at the switch to the root, held by the loop device); without, it is
// on none and no NFS root is mounted (the copy fetched into RAM).
func imageRoot(p probe, base, server string) error {
	f := loopFields(p.rootLoop)
	if len(f) != 2 || path.Base(f[0]) != base {
		return fmt.Errorf("the root's loop device is over %q; want %s", p.rootLoop, base)
	}
	switch {
	case server != "" && !onNFSVolume(p.nfsVolumes, f[1], server):
		return fmt.Errorf("the root's %s (device %s) is on no NFS volume of %s; volumes %s", base, f[1], server, orNone(p.nfsVolumes))
	case server == "" && (p.rootSource != "" || len(p.nfsVolumes) > 0):
		return fmt.Errorf("an HTTP image boot has NFS root %q, its %s on device %s and NFS volumes %s; want the fetched copy and no NFS", p.rootSource, base, f[1], orNone(p.nfsVolumes))
	}
	return nil
}

// userNetHost is the host as nodes on QEMU's user network reach it.
const userNetHost = "10.0.2.2"
