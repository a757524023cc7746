package storm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"nroot/verify/nfsclient"
)

// Options describe one run: Clients booting at once. Each client
// fetches BootURLs in turn over HTTP, as iPXE fetches a node's kernel and
// initramfs, then replays the working set against an NFSv4.1 server
// (NFS) in a session of its own, or fetches URL whole, as dracut's
// livenet does (HTTP).
type Options struct {
	Mode       string // a label for the report: tree, nfs-image, http, http-cache
	Clients    int
	WorkingSet *WorkingSet
	NFS        nfsclient.Target // Host 127.0.0.1, Version 4
	URL        string           // http://127.0.0.1:PORT/...
	// BootURLs are fetched by every client first, in order: the
	// generation's vmlinuz and initrd.img.
	BootURLs []string
	// ServerPIDs are the server's processes (their children too), whose
	// CPU time the run reports.
	ServerPIDs []int
	Timeout    time.Duration // the whole run; default 10 minutes
	// Pace replays each call no sooner than the node sent it (Op.At),
	// Pace times as fast: 1 as recorded, 4 four times faster. 0 sends
	// each call on the last one's reply, every node's guest work left
	// out: the worst case.
	Pace float64
	// Procs is how many worker processes the clients are spread over,
	// so their CPU time is counted apart from the server's: 0 for one
	// per client up to DefaultProcs, -1 for none (the clients run in
	// this process and their CPU is not counted).
	Procs int
	// Worker is the command that runs a worker (RunWorker answers
	// it); default this executable.
	Worker []string
}

// DefaultProcs bounds the worker processes of a run by default.
const DefaultProcs = 32

// Result is one run's figures. Times are seconds from the common start
// to a client's last reply.
type Result struct {
	Mode        string  `json:"mode"`
	Clients     int     `json:"clients"`
	Pace        float64 `json:"pace,omitempty"`
	P50         float64 `json:"p50_seconds"` // per boot: a client's completion
	P95         float64 `json:"p95_seconds"`
	P99         float64 `json:"p99_seconds"`
	Max         float64 `json:"max_seconds"`
	Seconds     float64 `json:"seconds"` // wall time of the run
	Bytes       int64   `json:"bytes"`   // NFS READ payload and HTTP bodies, all clients
	RPCs        int64   `json:"rpcs"`    // NFS COMPOUNDs or HTTP requests
	BytesPerSec float64 `json:"bytes_per_second"`
	RPCsPerSec  float64 `json:"rpcs_per_second"`
	// Per call: each NFS COMPOUND's time from sending to its reply.
	CallP50 float64 `json:"call_p50_seconds,omitempty"`
	CallP99 float64 `json:"call_p99_seconds,omitempty"`
	Calls   int64   `json:"calls_timed,omitempty"`
	// BootBytes is what one client fetched of BootURLs (kernel and
	// initramfs), BootP50 when half the clients had them.
	BootBytes int64   `json:"boot_bytes_per_client,omitempty"`
	BootP50   float64 `json:"boot_fetch_p50_seconds,omitempty"`
	// Opens and Closes are the open states made and closed, all
	// clients; LeftOpen those the recording did not close, closed at
	// the end.
	Opens    int64 `json:"opens,omitempty"`
	Closes   int64 `json:"closes,omitempty"`
	LeftOpen int64 `json:"left_open,omitempty"`
	// ServerCPU is the server's user and system time over the run;
	// ClientCPU the worker processes' (from their rusage).
	ServerCPU  float64 `json:"server_cpu_seconds"`
	ServerLoad float64 `json:"server_cpu_percent"` // of one CPU, over the run
	// ServerCPUEach is ServerCPU by process, in the order of
	// Options.ServerPIDs (with its children): ganesha apart from nginx.
	ServerCPUEach []float64 `json:"server_cpu_seconds_each,omitempty"`
	ClientCPU     float64   `json:"client_cpu_seconds"`
	ClientLoad    float64   `json:"client_cpu_percent"`
	Procs         int       `json:"client_processes"`
	Errors        int       `json:"errors"`
	FirstError    string    `json:"first_error,omitempty"`
	OriginBytes   int64     `json:"origin_bytes,omitempty"` // through a cache: what the origin sent
}

// MaxClients bounds a run.
const MaxClients = 2000

// ErrNotLoopback refuses a target that is not this machine.
var ErrNotLoopback = errors.New("a storm is sent to 127.0.0.1 only")

func checkURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" || p.Hostname() != "127.0.0.1" {
		return fmt.Errorf("storm: %q: %w (http://127.0.0.1:PORT/FILE)", u, ErrNotLoopback)
	}
	return nil
}

func checkOptions(o *Options) error {
	if o.Clients < 1 || o.Clients > MaxClients {
		return fmt.Errorf("storm: %d clients: from 1 to %d", o.Clients, MaxClients)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if !(o.Pace >= 0 && o.Pace <= 1000) { // NaN too
		return fmt.Errorf("storm: pace %v: 0 (back to back) or how many times faster than recorded, up to 1000", o.Pace)
	}
	if len(o.BootURLs) > 8 {
		return fmt.Errorf("storm: %d boot URLs; a boot fetches a kernel and an initramfs, at most 8 files", len(o.BootURLs))
	}
	for _, u := range o.BootURLs {
		if err := checkURL(u); err != nil {
			return err
		}
	}
	if o.URL != "" {
		return checkURL(o.URL)
	}
	if o.NFS.Host != "127.0.0.1" {
		return fmt.Errorf("storm: server %q: %w", o.NFS.Host, ErrNotLoopback)
	}
	if o.WorkingSet == nil || len(o.WorkingSet.Calls) == 0 {
		return errors.New("storm: no working set to replay")
	}
	return nil
}

// tally is what a group of clients (a worker process, or this one) did.
type tally struct {
	Times      []float64 `json:"times"`      // each client's completion
	BootTimes  []float64 `json:"boot_times"` // each client's end of BootURLs
	Errs       []string  `json:"errors"`
	Bytes      int64     `json:"bytes"`
	BootBytes  int64     `json:"boot_bytes"`
	RPCs       int64     `json:"rpcs"`
	Hist       Hist      `json:"hist"`
	Opens      int64     `json:"opens"`
	Closes     int64     `json:"closes"`
	LeftOpen   int64     `json:"left_open"`
	serverCPU  float64   // over the run, measured by the parent
	serverEach []float64
}

func (t *tally) add(o *tally) {
	t.Times = append(t.Times, o.Times...)
	t.BootTimes = append(t.BootTimes, o.BootTimes...)
	t.Errs = append(t.Errs, o.Errs...)
	t.Bytes += o.Bytes
	t.BootBytes += o.BootBytes
	t.RPCs += o.RPCs
	t.Hist.Merge(o.Hist)
	t.Opens += o.Opens
	t.Closes += o.Closes
	t.LeftOpen += o.LeftOpen
}

// job is what one group of clients is to do.
type job struct {
	Clients  int              `json:"clients"`
	Workset  string           `json:"workset,omitempty"` // a file, for a worker
	NFS      nfsclient.Target `json:"nfs"`
	URL      string           `json:"url,omitempty"`
	BootURLs []string         `json:"boot_urls,omitempty"`
	Timeout  time.Duration    `json:"timeout"`
	Pace     float64          `json:"pace,omitempty"`
	ws       *WorkingSet
}

// clients runs j's clients at once from start and waits for all of them.
func (j *job) clients(ctx context.Context, start time.Time) *tally {
	var mu sync.Mutex
	all := &tally{}
	var wg sync.WaitGroup
	client := loopbackClient(j.Clients)
	for range j.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := &tally{}
			var err error
			for _, u := range j.BootURLs {
				var b int64
				b, _, err = fetch(ctx, client, u)
				one.BootBytes += b
				one.Bytes += b
				one.RPCs++
				if err != nil {
					break
				}
			}
			if len(j.BootURLs) > 0 {
				one.BootTimes = append(one.BootTimes, time.Since(start).Seconds())
			}
			if err == nil {
				if j.URL != "" {
					var b, r int64
					b, r, err = fetch(ctx, client, j.URL)
					one.Bytes += b
					one.RPCs += r
				} else {
					err = replay(ctx, j.NFS, j.ws, j.Pace, one)
				}
			}
			one.Times = append(one.Times, time.Since(start).Seconds())
			if err != nil {
				one.Errs = append(one.Errs, err.Error())
			}
			mu.Lock()
			all.add(one)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

// Run starts every client at once and waits for all of them, within the
// timeout.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := checkOptions(&o); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	j := job{NFS: o.NFS, URL: o.URL, BootURLs: o.BootURLs, Timeout: o.Timeout, Pace: o.Pace, ws: o.WorkingSet}
	if o.URL != "" {
		j.ws = nil
	}
	procs := o.Procs
	if procs == 0 {
		procs = min(o.Clients, DefaultProcs)
	}
	procs = min(procs, o.Clients)
	var all *tally
	var clientCPU, wall float64
	var runErr error
	if procs < 1 {
		procs = 0
		j.Clients = o.Clients
		cpu0 := cpuEach(o.ServerPIDs)
		t0 := time.Now()
		all = j.clients(ctx, t0)
		wall = time.Since(t0).Seconds()
		all.serverCPU, all.serverEach = cpuSince(o.ServerPIDs, cpu0)
	} else {
		all, clientCPU, wall, runErr = runWorkers(ctx, o, j, procs)
		if runErr != nil && all == nil {
			return nil, runErr
		}
	}
	res := &Result{Mode: o.Mode, Clients: o.Clients, Pace: o.Pace, Seconds: wall, Bytes: all.Bytes, RPCs: all.RPCs, Procs: procs,
		Opens: all.Opens, Closes: all.Closes, LeftOpen: all.LeftOpen, Calls: all.Hist.Count(),
		CallP50: all.Hist.Quantile(0.50), CallP99: all.Hist.Quantile(0.99), ClientCPU: clientCPU}
	for _, e := range all.Errs {
		if res.Errors == 0 {
			res.FirstError = e
		}
		res.Errors++
	}
	if missing := o.Clients - len(all.Times); missing > 0 {
		if res.Errors == 0 {
			res.FirstError = fmt.Sprintf("%d clients gave no result", missing)
			if runErr != nil {
				res.FirstError += ": " + runErr.Error()
			}
		}
		res.Errors += missing
	}
	times := all.Times
	if len(times) == 0 {
		times = []float64{wall}
	}
	sort.Float64s(times)
	res.P50, res.P95, res.P99, res.Max = quantile(times, 0.50), quantile(times, 0.95), quantile(times, 0.99), times[len(times)-1]
	if len(all.BootTimes) > 0 {
		sort.Float64s(all.BootTimes)
		res.BootP50 = quantile(all.BootTimes, 0.50)
		res.BootBytes = all.BootBytes / int64(len(all.BootTimes))
	}
	if wall > 0 {
		res.BytesPerSec, res.RPCsPerSec = float64(res.Bytes)/wall, float64(res.RPCs)/wall
		res.ClientLoad = 100 * res.ClientCPU / wall
	}
	if len(o.ServerPIDs) > 0 {
		res.ServerCPU, res.ServerCPUEach = all.serverCPU, all.serverEach
		res.ServerLoad = 100 * res.ServerCPU / max(wall, 1e-9)
	}
	if runErr != nil {
		return res, runErr
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("storm: %d clients did not finish within %v", o.Clients, o.Timeout)
	}
	return res, nil
}

// waitUntil sleeps until t, or until ctx ends.
func waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrRedirect refuses an HTTP redirect: a storm measures the fetch of
// the URL it was given, on this machine, and a redirect could lead
// anywhere.
var ErrRedirect = errors.New("a storm follows no redirect")

// loopbackClient is the HTTP client of a storm. It follows no redirect,
// refusing it before anything is sent to where it leads, and dials
// 127.0.0.1 alone, whatever a request asks for.
func loopbackClient(conns int) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		if host, _, err := net.SplitHostPort(address); err != nil || host != "127.0.0.1" {
			return fmt.Errorf("storm: dial %s: %w", address, ErrNotLoopback)
		}
		return nil
	}}
	return &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: conns, DialContext: dialer.DialContext},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return fmt.Errorf("%w: %s redirected to %s; give the final URL on 127.0.0.1", ErrRedirect, via[len(via)-1].URL, req.URL)
		},
	}
}

// quantile is the nearest-rank quantile of sorted values.
func quantile(sorted []float64, q float64) float64 {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// fetch gets a URL whole and counts its bytes.
func fetch(ctx context.Context, c *http.Client, u string) (int64, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 1, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 1, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("GET %s: %d bytes of %d", u, n, resp.ContentLength)
	}
	return n, 1, err
}

// maxOpens bounds the open states one client holds at once.
const maxOpens = 65536

// replay is one client: a session of its own (EXCHANGE_ID and
// CREATE_SESSION), then every recorded COMPOUND as one COMPOUND of its
// own, on handles it looked up itself. OPEN makes open state with the
// session's client id, READ uses the open's stateid, CLOSE closes it;
// what the recording left open is closed at the end. Each call's time
// goes to t.Hist.
func replay(ctx context.Context, tg nfsclient.Target, ws *WorkingSet, pace float64, t *tally) (err error) {
	tg.Path, tg.AnyPort = "/", true
	c, err := nfsclient.Mount(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	defer func() { t.RPCs += c.RPCs() }()
	timed := func(f func() error) error {
		t0 := time.Now()
		err := f()
		t.Hist.Add(time.Since(t0))
		return err
	}
	handles := map[string][]byte{"/": c.Root}
	opens := map[string]*nfsclient.Open{}
	defer func() {
		for p, o := range opens {
			if ctx.Err() != nil {
				break
			}
			if cerr := timed(func() error { return c.Close4(ctx, o) }); cerr != nil && err == nil {
				err = fmt.Errorf("CLOSE %s at the end: %w", p, cerr)
			}
			t.LeftOpen++
		}
	}()
	var resolve func(p string, depth int) ([]byte, error)
	resolve = func(p string, depth int) ([]byte, error) {
		if fh, ok := handles[p]; ok {
			return fh, nil
		}
		if depth > 256 {
			return nil, fmt.Errorf("%s: deeper than 256 components", p)
		}
		dir, err := resolve(path.Dir(p), depth+1)
		if err != nil {
			return nil, err
		}
		var fh []byte
		err = timed(func() (err error) { _, fh, err = c.Lookup(ctx, dir, path.Base(p)); return })
		if err != nil {
			return nil, err
		}
		handles[p] = fh
		return fh, nil
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for _, op := range ws.Calls {
		if pace > 0 {
			if err := waitUntil(ctx, start.Add(time.Duration(op.At/pace*float64(time.Second)))); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if op.Path == "" || op.Op == "SEQUENCE" {
			if err := timed(func() error { return c.Sequence(ctx) }); err != nil {
				return err
			}
			continue
		}
		if op.Op == "LOOKUP" || op.Op == "OPEN" && op.Claim == "" {
			dir, err := resolve(path.Dir(op.Path), 0)
			if err != nil {
				if isNoEnt(err) {
					continue // the node looked up a name that is not there
				}
				return err
			}
			var fh []byte
			if op.Op == "OPEN" && len(opens) < maxOpens {
				var o *nfsclient.Open
				err = timed(func() (err error) { o, err = c.Open(ctx, dir, path.Base(op.Path)); return })
				if err == nil {
					fh = o.FH
					opens[op.Path] = o // the same owner's open of one file: one stateid, its newest
					t.Opens++
				}
			} else {
				err = timed(func() (err error) { _, fh, err = c.Lookup(ctx, dir, path.Base(op.Path)); return })
			}
			if err == nil {
				handles[op.Path] = fh
			} else if !isNoEnt(err) {
				return fmt.Errorf("%s %s: %w", op.Op, op.Path, err)
			}
			continue
		}
		fh, err := resolve(op.Path, 0)
		if err != nil {
			if isNoEnt(err) {
				continue
			}
			return err
		}
		switch op.Op {
		case "OPEN": // CLAIM_FH: the handle is the file
			var o *nfsclient.Open
			err = timed(func() (err error) { o, err = c.Open(ctx, fh, ""); return })
			if err == nil {
				opens[op.Path] = o
				t.Opens++
			}
		case "CLOSE":
			o := opens[op.Path]
			if o == nil {
				continue // opened before the recording, or on a handle it never named
			}
			delete(opens, op.Path)
			err = timed(func() error { return c.Close4(ctx, o) })
			t.Closes++
		case "GETATTR":
			err = timed(func() (err error) { _, err = c.Getattr(ctx, fh); return })
		case "ACCESS":
			err = timed(func() (err error) { _, err = c.Access(ctx, fh, 0x1f); return })
		case "READDIR":
			err = timed(func() (err error) { _, err = c.ReadDirPlus(ctx, fh, 1<<20); return })
		case "READLINK":
			err = timed(func() (err error) { _, err = c.Readlink(ctx, fh); return })
		case "READ":
			var n int
			if o := opens[op.Path]; o != nil {
				err = timed(func() (err error) { n, _, err = c.ReadOpen(ctx, o, op.Off, op.Count, buf); return })
			} else {
				err = timed(func() (err error) { n, _, err = c.Read(ctx, fh, op.Off, op.Count, buf); return })
			}
			t.Bytes += int64(n)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", op.Op, op.Path, err)
		}
	}
	return nil
}

func isNoEnt(err error) bool { return errors.Is(err, os.ErrNotExist) }

// CPUSeconds is the user and system CPU time of the processes and their
// children (one level, as nginx's workers and ganesha's threads are).
func CPUSeconds(pids []int) float64 {
	if len(pids) == 0 {
		return 0
	}
	all := map[int]bool{}
	for _, p := range pids {
		all[p] = true
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if f := procStat(pid); len(f) > 2 {
				if ppid, _ := strconv.Atoi(f[1]); all[ppid] {
					all[pid] = true
				}
			}
		}
	}
	var ticks float64
	for p := range all {
		f := procStat(p)
		if len(f) > 13 {
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			ticks += u + s
		}
	}
	return ticks / 100 // USER_HZ
}

// cpuEach is CPUSeconds of each process apart.
func cpuEach(pids []int) []float64 {
	out := make([]float64, len(pids))
	for i, p := range pids {
		out[i] = CPUSeconds([]int{p})
	}
	return out
}

// cpuSince is the CPU time of each process since cpuEach gave before,
// and their sum.
func cpuSince(pids []int, before []float64) (float64, []float64) {
	each := cpuEach(pids)
	var sum float64
	for i := range each {
		each[i] -= before[i]
		sum += each[i]
	}
	return sum, each
}

// procStat returns /proc/PID/stat's fields after the command name (the
// first is the state).
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}
