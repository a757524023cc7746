package storm_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"nroot/internal/ganesha"
	"nroot/internal/testenv"
	"nroot/nfscheck"
	"nroot/storm"
)

// tree is a small root: files to read, links to follow, a directory to
// list.
func tree(t *testing.T) (string, int64) {
	root := filepath.Join(t.TempDir(), "root")
	var total int64
	for i, d := range []string{"etc", "usr/bin", "usr/lib/x"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		data := strings.Repeat(strconv.Itoa(i), 200000*(i+1))
		os.WriteFile(filepath.Join(root, d, "f"), []byte(data), 0o644)
		total += int64(len(data))
	}
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	return root, total
}

// TestRecordAndReplay puts the recorder between nroot check (NFSv4.1, a
// deep walk) and nfs-ganesha: the working set names every file read with
// its bytes and counts the COMPOUNDs; three clients then replay it
// against the server and read the same bytes each.
func TestRecordAndReplay(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "ganesha.nfsd")
	root, total := tree(t)
	srv, err := ganesha.Start(context.Background(), []ganesha.Export{{ID: 1, Path: root, Pseudo: "/node"}}, ganesha.Options{V4Only: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	ln, err := storm.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := storm.NewRecorder(ln, "127.0.0.1:"+strconv.Itoa(srv.NFSPort), "tree")
	port := ln.Addr().(*net.TCPAddr).Port
	rep, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: nfscheck.Target{Host: "127.0.0.1", NFSPort: port, Path: "/node", Version: 4}, Rootfs: root, Deep: true, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Differences) > 0 {
		t.Fatalf("through the recorder the export differs: %+v", rep.Differences)
	}
	ws := rec.Close()
	t.Log(ws.Summary())
	if ws.Bytes != total || ws.Files["/node/usr/lib/x/f"] != 600000 || ws.Files["/node/etc/f"] != 200000 {
		t.Errorf("recorded %d bytes (the files hold %d): %v", ws.Bytes, total, ws.Files)
	}
	// EXCHANGE_ID, CREATE_SESSION and DESTROY_CLIENTID go without SEQUENCE.
	if ws.Ops["READDIR"] == 0 || ws.Ops["READLINK"] != 1 || ws.Ops["SEQUENCE"] != ws.RPCs-3 || ws.Unnamed != 0 {
		t.Errorf("ops %v, RPCs %d, unnamed %d", ws.Ops, ws.RPCs, ws.Unnamed)
	}
	var buf bytes.Buffer
	if err := ws.Write(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := storm.ReadWorkingSet(&buf)
	if err != nil {
		t.Fatal(err)
	}
	res, err := storm.Run(context.Background(), storm.Options{Mode: "tree", Clients: 3, WorkingSet: back,
		NFS: nfscheck.Target{Host: "127.0.0.1", NFSPort: srv.NFSPort, Version: 4}, ServerPIDs: []int{srv.PID()}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Bytes != 3*total || res.RPCs < 3*int64(len(back.Calls)) || res.P50 <= 0 || res.P99 < res.P50 {
		t.Errorf("replay: %+v", res)
	}
	// The plot is an SVG a browser reads.
	svg := storm.Plot([]storm.Result{*res, {Mode: "nfs-image", Clients: 10, P50: 1, P99: 2}}, "test")
	if err := xml.Unmarshal(svg, new(struct{ XMLName xml.Name })); err != nil {
		t.Errorf("the plot is not XML: %v", err)
	}
}

func TestRunRefusesOtherHosts(t *testing.T) {
	ws := &storm.WorkingSet{Calls: []storm.Op{{Op: "SEQUENCE"}}}
	for _, o := range []storm.Options{
		{Clients: 1, WorkingSet: ws, NFS: nfscheck.Target{Host: "10.0.0.1", Version: 4}},
		{Clients: 1, URL: "http://example.org/root.squashfs"},
		{Clients: 1, URL: "http://127.0.0.2/root.squashfs"},
	} {
		if _, err := storm.Run(context.Background(), o); !errors.Is(err, storm.ErrNotLoopback) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if _, err := storm.Run(context.Background(), storm.Options{Clients: 0, WorkingSet: ws, NFS: nfscheck.Target{Host: "127.0.0.1"}}); err == nil {
		t.Error("0 clients accepted")
	}
	if _, err := storm.Listen(context.Background(), "0.0.0.0:0"); err == nil {
		t.Error("the recorder listened beyond loopback")
	}
}

func TestReadWorkingSetRefuses(t *testing.T) {
	for _, s := range []string{
		`{}`,
		`{"calls":[{"op":"WRITE","path":"/x"}]}`,
		`{"calls":[{"op":"READ","path":"/x","count":99999999}]}`,
		`not json`,
	} {
		if _, err := storm.ReadWorkingSet(strings.NewReader(s)); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
}

func FuzzReadWorkingSet(f *testing.F) {
	f.Add([]byte(`{"mode":"tree","calls":[{"op":"READ","path":"/a","off":0,"count":4096}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := storm.ReadWorkingSet(bytes.NewReader(b))
		if err == nil && (len(ws.Calls) == 0 || len(ws.Calls) > 2_000_000) {
			t.Fatalf("accepted %d calls", len(ws.Calls))
		}
	})
}
