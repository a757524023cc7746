package storm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// A run's clients live in worker processes, so their CPU time is counted
// apart from the server's: each worker is this executable again with
// WorkerEnv set (RunWorker answers it), given its share of the clients
// as a job on stdin. It says "ready" once it has read the working set,
// starts its clients when the parent writes "go", and writes what they
// did as JSON.

// WorkerEnv marks a process as a storm worker.
const WorkerEnv = "NROOT_STORM_WORKER"

// maxTally bounds a worker's answer.
const maxTally = 64 << 20

// RunWorker makes this process a storm worker when WorkerEnv is set: it
// runs the job on stdin and exits. Otherwise it returns at once. Call it
// first in main (and in TestMain of tests that run a storm).
func RunWorker() {
	if os.Getenv(WorkerEnv) != "1" {
		return
	}
	if err := worker(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "storm worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func worker(in io.Reader, out io.Writer) error {
	rd := bufio.NewReader(io.LimitReader(in, 1<<20))
	line, err := rd.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the job: %w", err)
	}
	var j job
	if err := json.Unmarshal(line, &j); err != nil {
		return fmt.Errorf("the job: %w", err)
	}
	if j.Clients < 1 || j.Clients > MaxClients || j.Timeout <= 0 {
		return fmt.Errorf("the job: %d clients, timeout %v", j.Clients, j.Timeout)
	}
	o := Options{Clients: j.Clients, NFS: j.NFS, URL: j.URL, BootURLs: j.BootURLs, Timeout: j.Timeout, Pace: j.Pace}
	if j.URL == "" {
		f, err := os.Open(j.Workset)
		if err != nil {
			return err
		}
		j.ws, err = ReadWorkingSet(f)
		f.Close()
		if err != nil {
			return err
		}
		o.WorkingSet = j.ws
	}
	if err := checkOptions(&o); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	if line, err := rd.ReadString('\n'); err != nil || line != "go\n" {
		return fmt.Errorf("waiting for go: %q, %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.Timeout)
	defer cancel()
	t := j.clients(ctx, time.Now())
	return json.NewEncoder(out).Encode(t)
}

// worker is one worker process as the parent sees it.
type workerProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	res   *tally
	err   error
	stder limitedWriter
}

// runWorkers spreads o's clients over procs worker processes, starts
// them together once every one is ready, and sums what they did; it
// returns their CPU time (rusage) and the wall time from the start.
func runWorkers(ctx context.Context, o Options, j job, procs int) (*tally, float64, float64, error) {
	argv := o.Worker
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("storm: the worker executable: %w", err)
		}
		argv = []string{exe}
	}
	if j.ws != nil {
		dir, err := os.MkdirTemp("", "nroot-storm-")
		if err != nil {
			return nil, 0, 0, err
		}
		defer os.RemoveAll(dir)
		j.Workset = filepath.Join(dir, "workset.json")
		f, err := os.Create(j.Workset)
		if err != nil {
			return nil, 0, 0, err
		}
		err = j.ws.Write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("storm: writing the working set for the workers: %w", err)
		}
	}
	ws := make([]*workerProc, procs)
	stop := func() {
		for _, w := range ws {
			if w != nil && w.cmd.Process != nil {
				w.cmd.Process.Kill()
				w.cmd.Wait()
			}
		}
	}
	for i := range ws {
		jj := j
		jj.Clients = o.Clients / procs
		if i < o.Clients%procs {
			jj.Clients++
		}
		b, _ := json.Marshal(jj)
		w := &workerProc{cmd: exec.Command(argv[0], argv[1:]...)}
		w.cmd.Env = append(os.Environ(), WorkerEnv+"=1")
		w.stder.n = 4096
		w.cmd.Stderr = &w.stder
		in, err := w.cmd.StdinPipe()
		if err != nil {
			stop()
			return nil, 0, 0, err
		}
		out, err := w.cmd.StdoutPipe()
		if err != nil {
			stop()
			return nil, 0, 0, err
		}
		w.in, w.out = in, bufio.NewReader(io.LimitReader(out, maxTally))
		if err := w.cmd.Start(); err != nil {
			stop()
			return nil, 0, 0, fmt.Errorf("storm: starting a worker (%s): %w", argv[0], err)
		}
		ws[i] = w
		if _, err := in.Write(append(b, '\n')); err != nil {
			stop()
			return nil, 0, 0, fmt.Errorf("storm: a worker did not get ready: it ended before taking its job (%w) %s", err, strings.TrimSpace(w.stder.String()))
		}
	}
	// Every worker ready (its working set read), within a minute.
	ready := make(chan error, procs)
	for _, w := range ws {
		go func() {
			line, err := w.out.ReadString('\n')
			if err == nil && line != "ready\n" {
				err = fmt.Errorf("said %q", line)
			}
			if err != nil {
				err = fmt.Errorf("storm: a worker did not get ready: %v %s", err, strings.TrimSpace(w.stder.String()))
			}
			ready <- err
		}()
	}
	deadline := time.After(time.Minute)
	for range ws {
		select {
		case err := <-ready:
			if err != nil {
				stop()
				return nil, 0, 0, err
			}
		case <-deadline:
			stop()
			return nil, 0, 0, errors.New("storm: the workers were not ready within a minute")
		case <-ctx.Done():
			stop()
			return nil, 0, 0, ctx.Err()
		}
	}
	// The workers' CPU until now (start-up, reading the working set) is
	// not the run's: where /proc tells it, it is taken off their rusage.
	var startCPU float64
	for _, w := range ws {
		startCPU += CPUSeconds([]int{w.cmd.Process.Pid})
	}
	cpu0 := cpuEach(o.ServerPIDs)
	t0 := time.Now()
	for _, w := range ws {
		w.in.Write([]byte("go\n"))
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var t tally
			if err := json.NewDecoder(w.out).Decode(&t); err != nil {
				w.err = fmt.Errorf("a worker's result: %w", err)
			} else {
				w.res = &t
			}
			w.in.Close()
			if err := w.cmd.Wait(); err != nil && w.err == nil {
				w.err = err
			}
			if w.err != nil && w.stder.Len() > 0 {
				w.err = fmt.Errorf("%w: %s", w.err, strings.TrimSpace(w.stder.String()))
			}
		}()
	}
	// The workers end by their own timeout; past it and a margin, they
	// are killed.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(j.Timeout + 30*time.Second):
		stop()
		<-done
	}
	wall := time.Since(t0).Seconds()
	all := &tally{}
	all.serverCPU, all.serverEach = cpuSince(o.ServerPIDs, cpu0)
	var cpu float64
	var firstErr error
	for _, w := range ws {
		if w.res != nil {
			all.add(w.res)
		}
		if w.err != nil && firstErr == nil {
			firstErr = fmt.Errorf("storm: %w", w.err)
		}
		if w.cmd.ProcessState != nil {
			cpu += processCPU(w.cmd.ProcessState)
		}
	}
	return all, max(cpu-startCPU, 0), wall, firstErr
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	mu sync.Mutex
	w  strings.Builder
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := min(len(p), l.n-l.w.Len()); k > 0 {
		l.w.Write(p[:k])
	}
	return len(p), nil
}

func (l *limitedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *limitedWriter) Len() int { return len(l.String()) }

// processCPU is an ended child's user and system time (its rusage).
func processCPU(ps *os.ProcessState) float64 {
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}
