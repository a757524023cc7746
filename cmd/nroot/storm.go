package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"nroot/internal/atomicfile"
	"nroot/verify/nfsclient"
	"nroot/verify/storm"
)

// A storm's clients run in worker processes: this executable again,
// which answers as a worker before any command is parsed.
func init() { storm.RunWorker() }

func newStormCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storm",
		Short: "Record a node's boot working set and replay it as a boot storm on loopback",
		Long: `Storm measures what one NFS server holds when many nodes boot at once.

record is a proxy between a booting node and the NFS server: it forwards
every byte and reads each NFSv4 COMPOUND and its reply, and writes the boot's
working set: every COMPOUND in order, reduced to its main operation (LOOKUP,
OPEN, GETATTR, ACCESS, READDIR, READLINK, READ with its byte range), the path
it works on, and the counts by operation.

run replays a working set with N concurrent in-process NFSv4.1 clients, each
with its own session, or fetches an image file whole over HTTP as dracut's
livenet does, and reports per run the p50, p95 and p99 time for a client to
finish, bytes/s, RPCs/s and the server's CPU (--server-pid). Traffic goes to
127.0.0.1 only: a storm is a load test of this machine's server.`,
	}
	cmd.AddCommand(newStormRecordCmd(g), newStormRunCmd())
	return cmd
}

func newStormRecordCmd(g *globals) *cobra.Command {
	var listen, upstream, mode, out string
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "record --listen 127.0.0.1:2049 --upstream 127.0.0.1:PORT --out WORKSET.json",
		Short: "Record the NFSv4 COMPOUNDs of a boot through a proxy",
		Long: `Record listens on --listen (127.0.0.1), forwards each connection to
--upstream, the NFS server, and writes the working set to --out when
interrupted (Ctrl-C, SIGTERM) or after --duration. A recording in which no
NFSv4.1 COMPOUND passed writes nothing and exits 1. A QEMU guest with
user-mode networking reaches 127.0.0.1:2049 as 10.0.2.2:2049: run the server
on another port and the recorder on 2049.`,
		Example: `  nroot storm record --listen 127.0.0.1:2049 --upstream 127.0.0.1:20490 --mode tree --out tree.json`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErr("--out: give the file the working set goes to")
			}
			if upstream == "" {
				return usageErr("--upstream: give the NFS server the node's requests go to, HOST:PORT (e.g. --upstream 127.0.0.1:20490)")
			}
			if err := storm.CheckUpstream(upstream); err != nil {
				return usageErr("--upstream: %w", err)
			}
			if duration <= 0 || duration > 24*time.Hour {
				return usageErr("--duration %v: from 1s to 24h", duration)
			}
			ln, err := storm.Listen(cmd.Context(), listen)
			if err != nil {
				return usageErr("--listen: %w", err)
			}
			rec := storm.NewRecorder(ln, upstream, mode)
			log := g.logger()
			log.Info(fmt.Sprintf("recording on %s for %s; Ctrl-C ends it", listen, upstream), "stage", "storm")
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			select {
			case <-sig:
			case <-time.After(duration):
			case <-cmd.Context().Done():
			}
			ws, err := rec.Finish()
			if err != nil {
				return err
			}
			f, err := atomicfile.Create(out, 0o644)
			if err != nil {
				return err
			}
			defer f.Abort()
			if err := ws.Write(f); err != nil {
				return err
			}
			log.Info(ws.Summary(), "stage", "storm")
			return f.Commit()
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:2049", "address the node connects to (127.0.0.1 only)")
	cmd.Flags().StringVar(&upstream, "upstream", "", "the NFS server, HOST:PORT (required)")
	cmd.Flags().StringVar(&mode, "mode", "tree", "label of what booted: tree or nfs-image")
	cmd.Flags().StringVar(&out, "out", "", "working set file to write")
	cmd.Flags().DurationVar(&duration, "duration", time.Hour, "stop recording after this long")
	return cmd
}

func newStormRunCmd() *cobra.Command {
	var workset, clients, svg, mode string
	var pids []int
	var bootURLs []string
	var procs int
	var pace float64
	var timeout time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run [--workset WORKSET.json] --clients 1,10,100 nfs4://127.0.0.1:PORT/ | http://127.0.0.1:PORT/FILE",
		Short: "Replay a boot working set with many concurrent clients",
		Long: `Run replays, for each --clients count in turn, the working set (nfs4://) or a
whole-file HTTP fetch (http://), all clients starting together, each first
fetching the --boot-url files (kernel, initramfs) as iPXE does. Clients run in
worker processes (this executable again), so their CPU time is reported apart
from the server's. It prints per boot p50/p95/p99, per call p50/p99, a
table (or --json) and with --svg a plot of time against clients. Every run is
bounded by --timeout; a run with a client's error, or past the timeout, makes
the exit status 1 after the table is printed. An HTTP redirect is a client's
error, not followed: give the final URL on 127.0.0.1.`,
		Example: `  nroot storm run --workset tree.json --clients 1,10,50,100 --server-pid $(pidof ganesha.nfsd) nfs4://127.0.0.1:20490/
  nroot storm run --clients 1,10,100 --mode http http://127.0.0.1:8080/generations/1/root.squashfs`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var counts []int
			for _, s := range strings.Split(clients, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 1 || n > storm.MaxClients {
					return usageErr("--clients %q: numbers from 1 to %d, comma-separated", clients, storm.MaxClients)
				}
				counts = append(counts, n)
			}
			if procs < -1 || procs > storm.MaxClients {
				return usageErr("--procs %d: -1 (clients in this process), 0 (one per client up to %d) or a count", procs, storm.DefaultProcs)
			}
			if !(pace >= 0 && pace <= 1000) {
				return usageErr("--pace %v: 0 (each call on the last one's reply) or how many times faster than recorded, up to 1000 (1: as recorded)", pace)
			}
			o := storm.Options{Mode: mode, ServerPIDs: pids, Timeout: timeout, BootURLs: bootURLs, Procs: procs, Pace: pace}
			if strings.HasPrefix(args[0], "http://") {
				o.URL = args[0]
				if o.Mode == "" {
					o.Mode = "http"
				}
			} else {
				t, err := nfsclient.ParseURL(args[0])
				if err != nil || t.Version != 4 {
					return usageErr("%s: give nfs4://127.0.0.1:PORT/ or http://127.0.0.1:PORT/FILE", args[0])
				}
				if workset == "" {
					return usageErr("--workset: an NFS storm replays a recorded working set (nroot storm record)")
				}
				f, err := os.Open(workset)
				if err != nil {
					return usageErr("--workset: %w", err)
				}
				o.WorkingSet, err = storm.ReadWorkingSet(f)
				f.Close()
				if err != nil {
					return usageErr("--workset %s: %w", workset, err)
				}
				o.NFS = t
				if o.Mode == "" {
					o.Mode = o.WorkingSet.Mode
				}
			}
			var results []storm.Result
			var failed error
			for _, n := range counts {
				o.Clients = n
				res, err := storm.Run(cmd.Context(), o)
				if res != nil {
					results = append(results, *res)
					if res.Errors > 0 && failed == nil {
						failed = fmt.Errorf("%d clients failed at %d, first: %s", res.Errors, n, res.FirstError)
					}
				}
				if err != nil {
					if res == nil {
						return usageErr("%w", err)
					}
					failed = err
					break
				}
			}
			if asJSON {
				if err := printJSON(map[string]any{"results": results}); err != nil {
					return err
				}
			} else {
				storm.WriteTable(os.Stdout, results)
			}
			if svg != "" {
				if err := atomicfile.WriteFile(svg, storm.Plot(results, "boot storm: "+args[0]), 0o644); err != nil {
					return err
				}
			}
			return failed
		},
	}
	cmd.Flags().StringVar(&workset, "workset", "", "working set to replay (nroot storm record), for nfs4://")
	cmd.Flags().StringVar(&clients, "clients", "1,10,50,100", "concurrent clients per run, comma-separated")
	cmd.Flags().StringVar(&mode, "mode", "", "label of the runs in the table (default tree or http)")
	cmd.Flags().IntSliceVar(&pids, "server-pid", nil, "server process whose CPU to report (repeatable; its children count)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "bound on each run")
	cmd.Flags().StringArrayVar(&bootURLs, "boot-url", nil, "fetched by every client first, as iPXE does: the generation's vmlinuz, then initrd.img (repeatable, http://127.0.0.1 only)")
	cmd.Flags().IntVar(&procs, "procs", 0, "worker processes the clients run in, their CPU reported apart (0: one per client up to 32; -1: none)")
	cmd.Flags().Float64Var(&pace, "pace", 0, "send each call no sooner than the node did, this many times faster (1: as recorded; 0: on the last reply, the worst case)")
	cmd.Flags().StringVar(&svg, "svg", "", "write a plot of time against clients here")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
