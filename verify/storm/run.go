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
	"sync/atomic"
	"syscall"
	"time"

	"nroot/verify/nfsclient"
)

// Options describe one run: Clients replaying the working set at once
// against an NFSv4.1 server (NFS), or fetching URL whole, as dracut's
// livenet does (HTTP).
type Options struct {
	Mode       string // a label for the report: tree, nfs-image, http, http-cache
	Clients    int
	WorkingSet *WorkingSet
	NFS        nfsclient.Target // Host 127.0.0.1, Version 4
	URL        string           // http://127.0.0.1:PORT/...
	// ServerPIDs are the server's processes (their children too), whose
	// CPU time the run reports.
	ServerPIDs []int
	Timeout    time.Duration // the whole run; default 10 minutes
}

// Result is one run's figures. Times are seconds from the common start
// to a client's last reply.
type Result struct {
	Mode        string  `json:"mode"`
	Clients     int     `json:"clients"`
	P50         float64 `json:"p50_seconds"`
	P95         float64 `json:"p95_seconds"`
	P99         float64 `json:"p99_seconds"`
	Max         float64 `json:"max_seconds"`
	Seconds     float64 `json:"seconds"` // wall time of the run
	Bytes       int64   `json:"bytes"`
	RPCs        int64   `json:"rpcs"` // NFS COMPOUNDs or HTTP requests
	BytesPerSec float64 `json:"bytes_per_second"`
	RPCsPerSec  float64 `json:"rpcs_per_second"`
	ServerCPU   float64 `json:"server_cpu_seconds"`
	ServerLoad  float64 `json:"server_cpu_percent"` // of one CPU, over the run
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	OriginBytes int64   `json:"origin_bytes,omitempty"` // through a cache: what the origin sent
}

// MaxClients bounds a run.
const MaxClients = 2000

// ErrNotLoopback refuses a target that is not this machine.
var ErrNotLoopback = errors.New("a storm is sent to 127.0.0.1 only")

func checkOptions(o *Options) error {
	if o.Clients < 1 || o.Clients > MaxClients {
		return fmt.Errorf("storm: %d clients: from 1 to %d", o.Clients, MaxClients)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.URL != "" {
		u, err := url.Parse(o.URL)
		if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
			return fmt.Errorf("storm: %q: %w (http://127.0.0.1:PORT/FILE)", o.URL, ErrNotLoopback)
		}
		return nil
	}
	if o.NFS.Host != "127.0.0.1" {
		return fmt.Errorf("storm: server %q: %w", o.NFS.Host, ErrNotLoopback)
	}
	if o.WorkingSet == nil || len(o.WorkingSet.Calls) == 0 {
		return errors.New("storm: no working set to replay")
	}
	return nil
}

// Run starts every client at once and waits for all of them, within the
// timeout.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := checkOptions(&o); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cpu0 := cpuSeconds(o.ServerPIDs)
	var bytes, rpcs atomic.Int64
	times := make([]float64, o.Clients)
	errs := make([]error, o.Clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	var t0 time.Time
	client := loopbackClient(o.Clients)
	for i := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var b, r int64
			var err error
			if o.URL != "" {
				b, r, err = fetch(ctx, client, o.URL)
			} else {
				b, r, err = replay(ctx, o.NFS, o.WorkingSet)
			}
			times[i] = time.Since(t0).Seconds()
			errs[i] = err
			bytes.Add(b)
			rpcs.Add(r)
		}()
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0).Seconds()
	res := &Result{Mode: o.Mode, Clients: o.Clients, Seconds: wall, Bytes: bytes.Load(), RPCs: rpcs.Load()}
	for _, err := range errs {
		if err != nil {
			if res.Errors == 0 {
				res.FirstError = err.Error()
			}
			res.Errors++
		}
	}
	sort.Float64s(times)
	res.P50, res.P95, res.P99, res.Max = quantile(times, 0.50), quantile(times, 0.95), quantile(times, 0.99), times[len(times)-1]
	if wall > 0 {
		res.BytesPerSec, res.RPCsPerSec = float64(res.Bytes)/wall, float64(res.RPCs)/wall
	}
	if len(o.ServerPIDs) > 0 {
		res.ServerCPU = cpuSeconds(o.ServerPIDs) - cpu0
		res.ServerLoad = 100 * res.ServerCPU / wall
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("storm: %d clients did not finish within %v", o.Clients, o.Timeout)
	}
	return res, nil
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

// replay is one client: a session, then every recorded COMPOUND as one
// COMPOUND of its own, on handles it looked up itself.
func replay(ctx context.Context, t nfsclient.Target, ws *WorkingSet) (int64, int64, error) {
	t.Path, t.AnyPort = "/", true
	c, err := nfsclient.Mount(ctx, t)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	handles := map[string][]byte{"/": c.Root}
	var resolve func(p string) ([]byte, error)
	resolve = func(p string) ([]byte, error) {
		if fh, ok := handles[p]; ok {
			return fh, nil
		}
		dir, err := resolve(path.Dir(p))
		if err != nil {
			return nil, err
		}
		_, fh, err := c.Lookup(ctx, dir, path.Base(p))
		if err != nil {
			return nil, err
		}
		handles[p] = fh
		return fh, nil
	}
	var bytes int64
	buf := make([]byte, 1<<20)
	for _, op := range ws.Calls {
		if ctx.Err() != nil {
			return bytes, c.RPCs(), ctx.Err()
		}
		if op.Path == "" || op.Op == "SEQUENCE" {
			if err := c.Sequence(ctx); err != nil {
				return bytes, c.RPCs(), err
			}
			continue
		}
		if op.Op == "LOOKUP" || op.Op == "OPEN" {
			dir, err := resolve(path.Dir(op.Path))
			if err != nil {
				if isNoEnt(err) {
					continue // the node looked up a name that is not there
				}
				return bytes, c.RPCs(), err
			}
			_, fh, err := c.Lookup(ctx, dir, path.Base(op.Path))
			if err == nil {
				handles[op.Path] = fh
			} else if !isNoEnt(err) {
				return bytes, c.RPCs(), err
			}
			continue
		}
		fh, err := resolve(op.Path)
		if err != nil {
			if isNoEnt(err) {
				continue
			}
			return bytes, c.RPCs(), err
		}
		switch op.Op {
		case "GETATTR":
			_, err = c.Getattr(ctx, fh)
		case "ACCESS":
			_, err = c.Access(ctx, fh, 0x1f)
		case "READDIR":
			_, err = c.ReadDirPlus(ctx, fh, 1<<20)
		case "READLINK":
			_, err = c.Readlink(ctx, fh)
		case "READ":
			var n int
			n, _, err = c.Read(ctx, fh, op.Off, op.Count, buf)
			bytes += int64(n)
		}
		if err != nil {
			return bytes, c.RPCs(), fmt.Errorf("%s %s: %w", op.Op, op.Path, err)
		}
	}
	return bytes, c.RPCs(), nil
}

func isNoEnt(err error) bool { return errors.Is(err, os.ErrNotExist) }

// cpuSeconds is the user and system CPU time of the processes and their
// children (one level, as nginx's workers and ganesha's threads are).
func cpuSeconds(pids []int) float64 {
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
