package storm_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/verify/nfscheck"
	"nroot/verify/nfsclient"
	"nroot/verify/storm"
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
	rep, err := nfscheck.Run(context.Background(), nfscheck.Options{Target: nfsclient.Target{Host: "127.0.0.1", NFSPort: port, Path: "/node", Version: 4}, Rootfs: root, Deep: true, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Differences) > 0 {
		t.Fatalf("through the recorder the export differs: %+v", rep.Differences)
	}
	ws, err := rec.Finish()
	if err != nil {
		t.Fatal(err)
	}
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
		NFS: nfsclient.Target{Host: "127.0.0.1", NFSPort: srv.NFSPort, Version: 4}, ServerPIDs: []int{srv.PID()}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Bytes != 3*total || res.RPCs < 3*int64(len(back.Calls)) || res.P50 <= 0 || res.P99 < res.P50 {
		t.Errorf("replay: %+v", res)
	}
	// Each call has the time it was sent; a paced replay waits for it.
	last := back.Calls[len(back.Calls)-1].At
	if back.Calls[0].At != 0 || last <= 0 || ws.CallsTimed < int64(len(back.Calls)) || ws.CallP50 <= 0 {
		t.Errorf("recorded times: first call at %v s, last at %v s; %d calls timed, p50 %v s", back.Calls[0].At, last, ws.CallsTimed, ws.CallP50)
	}
	back.Calls[len(back.Calls)-1].At = 1.2
	for _, tt := range []struct {
		pace     float64
		min, max float64
	}{{0, 0, 1.2}, {1, 1.2, 60}, {4, 0.3, 1.2}} {
		res, err := storm.Run(context.Background(), storm.Options{Mode: "tree", Clients: 2, Pace: tt.pace, WorkingSet: back, Procs: -1,
			NFS: nfsclient.Target{Host: "127.0.0.1", NFSPort: srv.NFSPort, Version: 4}, Timeout: time.Minute})
		if err != nil || res.Errors != 0 {
			t.Fatalf("pace %v: %v %+v", tt.pace, err, res)
		}
		if res.P50 < tt.min || res.P50 >= tt.max || res.Pace != tt.pace {
			t.Errorf("pace %v: p50 %.2f s, want from %v to %v s (the last call is at 1.2 s)", tt.pace, res.P50, tt.min, tt.max)
		}
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
		{Clients: 1, WorkingSet: ws, NFS: nfsclient.Target{Host: "10.0.0.1", Version: 4}},
		{Clients: 1, URL: "http://example.org/root.squashfs"},
		{Clients: 1, URL: "http://127.0.0.2/root.squashfs"},
	} {
		if _, err := storm.Run(context.Background(), o); !errors.Is(err, storm.ErrNotLoopback) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if _, err := storm.Run(context.Background(), storm.Options{Clients: 0, WorkingSet: ws, NFS: nfsclient.Target{Host: "127.0.0.1"}}); err == nil {
		t.Error("0 clients accepted")
	}
	for _, pace := range []float64{-1, math.NaN(), math.Inf(1), 1001} {
		if _, err := storm.Run(context.Background(), storm.Options{Clients: 1, Pace: pace, WorkingSet: ws, NFS: nfsclient.Target{Host: "127.0.0.1"}}); err == nil {
			t.Errorf("pace %v accepted", pace)
		}
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
		`{"calls":[{"op":"READ","path":"/x","at":-1}]}`,
		`{"calls":[{"op":"READ","path":"/x","at":1e9}]}`,
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

// TestRunRefusesRedirects: an HTTP storm goes to 127.0.0.1 only, so a
// redirect is refused, naming where it led, and nothing is sent there:
// not to another loopback address, not to this machine's own
// non-loopback address (both stay on this machine, so the test sends
// nothing out whatever the code does), not even back to the same server.
func TestRunRefusesRedirects(t *testing.T) {
	targets := []string{"127.0.0.2"}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && !ip.IP.IsLoopback() {
				targets = append(targets, ip.IP.String())
				break
			}
		}
	}
	if len(targets) == 1 {
		t.Log("no non-loopback IPv4 address here: only the 127.0.0.2 case runs")
	}
	var locations []string
	var reached []*atomic.Int64
	for _, host := range targets {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		var conns atomic.Int64
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("elsewhere")) }),
			ConnState: func(c net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		locations = append(locations, "http://"+ln.Addr().String()+"/root.squashfs")
		reached = append(reached, &conns)
	}
	var same atomic.Int64
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			same.Add(1)
			w.Write([]byte("final"))
		default:
			i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
			http.Redirect(w, r, locations[i], http.StatusMovedPermanently)
		}
	}))
	defer redirector.Close()
	cases := []struct{ path, location string }{{"/same", redirector.URL + "/final"}}
	for i, l := range locations {
		cases = append(cases, struct{ path, location string }{"/" + strconv.Itoa(i), l})
	}
	for _, c := range cases {
		res, err := storm.Run(context.Background(), storm.Options{Clients: 2, URL: redirector.URL + c.path, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 2 || !strings.Contains(res.FirstError, "redirect") || !strings.Contains(res.FirstError, c.location) {
			t.Errorf("%s redirected to %s: %d errors, first %q; want the redirect refused, naming it", c.path, c.location, res.Errors, res.FirstError)
		}
	}
	for i, n := range reached {
		if n.Load() != 0 {
			t.Errorf("the storm followed the redirect to %s: %d connections", locations[i], n.Load())
		}
	}
	if same.Load() != 0 {
		t.Errorf("the storm followed a redirect on its own server")
	}
}

// TestRecordNothing: a recording in which no COMPOUND passed is an
// error, saying what it saw, and gives no working set.
func TestRecordNothing(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := free.Addr().String() // nothing listens there
	free.Close()
	// An upstream that answers with nothing an NFS server would say.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); c.Read(make([]byte, 64)) }()
		}
	}()
	tests := []struct {
		name     string
		upstream string
		connect  bool
		says     string
	}{
		{"no client", closed, false, "no client connected"},
		{"upstream unreachable", closed, true, "could not be reached"},
		{"no COMPOUND", silent.Addr().String(), true, "no NFSv4.1 COMPOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := storm.Listen(context.Background(), "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			rec := storm.NewRecorder(ln, tt.upstream, "tree")
			if tt.connect {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
				time.Sleep(200 * time.Millisecond)
				c.Close()
			}
			ws, err := rec.Finish()
			if !errors.Is(err, storm.ErrNothingRecorded) || !strings.Contains(err.Error(), tt.says) || ws != nil {
				t.Errorf("working set %v, error %v; want %v saying %q", ws, err, storm.ErrNothingRecorded, tt.says)
			}
		})
	}
	for _, addr := range []string{"", "127.0.0.1", ":2049", "127.0.0.1:0", "127.0.0.1:nfs", "127.0.0.1:70000"} {
		if err := storm.CheckUpstream(addr); err == nil {
			t.Errorf("upstream %q accepted", addr)
		}
	}
	if err := storm.CheckUpstream("127.0.0.1:20490"); err != nil {
		t.Error(err)
	}
}

// TestReplayOpenState replays a boot's opens against nfs-ganesha with
// real open state, from three worker processes, each client first
// fetching a kernel and an initramfs over HTTP: OPEN by name and by
// handle, READ with the open's stateid, ACCESS, CLOSE, and an open the
// recording left, closed at the end. A READ with a closed stateid is
// refused by the server: the state was real.
func TestReplayOpenState(t *testing.T) {
	testenv.Root(t)
	testenv.Command(t, "ganesha.nfsd")
	root, _ := tree(t)
	srv, err := ganesha.Start(context.Background(), []ganesha.Export{{ID: 1, Path: root, Pseudo: "/node"}}, ganesha.Options{V4Only: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	target := nfsclient.Target{Host: "127.0.0.1", NFSPort: srv.NFSPort, Version: 4}

	// The state is the server's: closed, its stateid reads no more.
	c, err := nfsclient.Mount(context.Background(), nfsclient.Target{Host: "127.0.0.1", NFSPort: srv.NFSPort, Version: 4, Path: "/node/etc", AnyPort: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o, err := c.Open(context.Background(), c.Root, "f")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if n, _, err := c.ReadOpen(context.Background(), o, 0, 4096, buf); err != nil || n != 4096 {
		t.Fatalf("READ with the open's stateid: %d bytes, %v", n, err)
	}
	if err := c.Close4(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadOpen(context.Background(), o, 0, 4096, buf); err == nil {
		t.Error("READ with a closed stateid succeeded: the open made no state")
	}
	if _, err := c.Open(context.Background(), c.Root, "absent"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OPEN of a missing name: %v, want not-exist", err)
	}

	kernel, initrd := strings.Repeat("k", 300000), strings.Repeat("i", 700000)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/generations/1/vmlinuz":
			w.Write([]byte(kernel))
		case "/generations/1/initrd.img":
			w.Write([]byte(initrd))
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()
	ws := &storm.WorkingSet{Mode: "tree", Calls: []storm.Op{
		{Op: "LOOKUP", Path: "/node/etc"},
		{Op: "ACCESS", Path: "/node/etc"},
		{Op: "OPEN", Path: "/node/etc/f"},
		{Op: "READ", Path: "/node/etc/f", Off: 0, Count: 65536},
		{Op: "READ", Path: "/node/etc/f", Off: 65536, Count: 65536},
		{Op: "CLOSE", Path: "/node/etc/f"},
		{Op: "LOOKUP", Path: "/node/usr/bin/f"},
		{Op: "OPEN", Path: "/node/usr/bin/f", Claim: "fh"},
		{Op: "READ", Path: "/node/usr/bin/f", Off: 0, Count: 4096},
		{Op: "GETATTR", Path: "/node/usr/bin/f"},
		{Op: "CLOSE", Path: "/node/usr/bin/f"},
		{Op: "CLOSE", Path: "/node/usr/bin/f"}, // no open left: not sent
		{Op: "OPEN", Path: "/node/usr/lib/x/f"},
		{Op: "OPEN", Path: "/node/absent"},
		{Op: "SEQUENCE"},
	}}
	tests := []struct {
		name  string
		procs int
	}{{"worker processes", 0}, {"in process", -1}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := storm.Run(context.Background(), storm.Options{Mode: "tree", Clients: 3, Procs: tt.procs, WorkingSet: ws, NFS: target,
				BootURLs: []string{web.URL + "/generations/1/vmlinuz", web.URL + "/generations/1/initrd.img"}, ServerPIDs: []int{srv.PID()}, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			var table bytes.Buffer
			storm.WriteTable(&table, []storm.Result{*res})
			t.Logf("%+v\n%s", *res, table.String())
			if res.Errors != 0 {
				t.Fatalf("%d errors, first: %s", res.Errors, res.FirstError)
			}
			if res.Opens != 9 || res.Closes != 6 || res.LeftOpen != 3 {
				t.Errorf("opens %d, closes %d, left open %d; want 9, 6, 3", res.Opens, res.Closes, res.LeftOpen)
			}
			if want := int64(3 * (65536*2 + 4096 + len(kernel) + len(initrd))); res.Bytes != want || res.BootBytes != int64(len(kernel)+len(initrd)) {
				t.Errorf("%d bytes, %d per boot over HTTP; want %d and %d", res.Bytes, res.BootBytes, want, len(kernel)+len(initrd))
			}
			if res.Calls < 3*13 || res.CallP50 <= 0 || res.CallP99 < res.CallP50 || res.CallP99 > res.Max+0.1 {
				t.Errorf("per call: %d timed, p50 %g, p99 %g (boot p99 %g)", res.Calls, res.CallP50, res.CallP99, res.P99)
			}
			if res.BootP50 <= 0 || res.BootP50 > res.P50 {
				t.Errorf("kernel and initramfs by %gs, the boot by %gs", res.BootP50, res.P50)
			}
			if tt.procs == 0 && (res.Procs != 3 || res.ClientCPU <= 0) || tt.procs < 0 && (res.Procs != 0 || res.ClientCPU != 0) {
				t.Errorf("%d client processes, their CPU %gs", res.Procs, res.ClientCPU)
			}
			if len(res.ServerCPUEach) != 1 || res.ServerCPUEach[0] != res.ServerCPU {
				t.Errorf("server CPU %g, by process %v", res.ServerCPU, res.ServerCPUEach)
			}
			if !strings.Contains(table.String(), "call p50") {
				t.Errorf("the table has no per-call column:\n%s", table.String())
			}
		})
	}
}

// TestWorkerFailures: a worker that cannot start, or ends before it is
// ready, is the run's error, naming it, and no result.
func TestWorkerFailures(t *testing.T) {
	ws := &storm.WorkingSet{Calls: []storm.Op{{Op: "SEQUENCE"}}}
	tests := []struct {
		name   string
		worker []string
		says   string
	}{
		{"missing", []string{"/nonexistent/nroot"}, "starting a worker"},
		{"ends at once", []string{"/bin/false"}, "did not get ready"},
		{"says other", []string{"/bin/echo", "hello"}, "did not get ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := storm.Run(context.Background(), storm.Options{Clients: 2, WorkingSet: ws, Worker: tt.worker,
				NFS: nfsclient.Target{Host: "127.0.0.1", NFSPort: 1, Version: 4}, Timeout: 30 * time.Second})
			if err == nil || !strings.Contains(err.Error(), tt.says) || res != nil {
				t.Errorf("result %+v, error %v; want no result and an error saying %q", res, err, tt.says)
			}
		})
	}
}
