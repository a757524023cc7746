package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"nroot/build/lockfile"
	"nroot/format/report"
	"nroot/internal/progress"
	"nroot/verify/nfscheck"
	"nroot/verify/nfsclient"
)

func newCheckCmd(g *globals) *cobra.Command {
	var o nfscheck.Options
	var lock string
	var asJSON bool
	var junit string
	var mountPort, nfsPort, nfsVersion int
	cmd := &cobra.Command{
		Use:   "check nfs://SERVER[:PORT]/PATH | nfs4://SERVER[:PORT]/PATH",
		Short: "Mount an NFS export in-process and prove a node can boot from it",
		Long: `Check mounts the export with an in-process NFSv3 client (no kernel mount, no
root needed), lists the exports, reports the server's FSINFO, walks the whole
tree with pipelined READDIRPLUS and READLINK, compares it with --rootfs (type,
mode with setuid/setgid, owner, size, symlink target; with --deep the SHA256
of every file) or with the packages of --lock, and runs boot-readiness checks:
/sbin/init, kernel modules for /boot's kernel, no root entry in fstab,
machine-id, SSH host keys, root_squash, and a read-only or writable export as
the image expects.

nfs:// speaks NFSv3 (portmapper, MOUNT, then NFS; PATH is the directory on
the server); nfs4:// or --nfs-version=4 speaks NFSv4.1, as nodes mount: one
session on the NFS port (2049 unless given), PATH looked up in the server's
pseudo file system (ganesha's Pseudo), READ with the anonymous stateid. The
walk, comparison and checks are the same.

Exit status: 0 when everything passes; 1 when checks fail or the trees
differ; 2 when the server cannot be reached or the export does not exist,
with the step that failed (portmap, mount or nfs), within --timeout.`,
		Example: `  nroot check nfs://10.0.0.1/srv/node --rootfs /srv/node
  nroot check --deep --json nfs://nfs-server/srv/node --rootfs ./node
  nroot check --mount-port 20048 nfs://10.0.0.1:2049/srv/node --lock node.lock
  nroot check nfs4://10.0.0.1/node --rootfs /srv/node`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Everything given is checked before the network is used.
			t, err := nfsclient.ParseURL(args[0])
			if err != nil {
				return usageErr("%w", err)
			}
			switch {
			case nfsPort < 0 || nfsPort > 65535:
				return usageErr("--nfs-port %d: a port is 1 to 65535", nfsPort)
			case mountPort < 0 || mountPort > 65535:
				return usageErr("--mount-port %d: a port is 1 to 65535", mountPort)
			case o.Timeout <= 0:
				return usageErr("--timeout %v: give how long to wait, e.g. --timeout=60s", o.Timeout)
			case o.Parallel <= 0:
				return usageErr("--parallel %d: give how many requests to keep in flight, at least 1", o.Parallel)
			case o.MaxDepth <= 0 || o.MaxEntries <= 0:
				return usageErr("--max-depth and --max-entries must be at least 1")
			case o.Rootfs != "" && lock != "":
				return usageErr("--rootfs and --lock: give one to compare with")
			}
			if o.Rootfs != "" {
				if fi, err := os.Stat(o.Rootfs); err != nil || !fi.IsDir() {
					return usageErr("--rootfs %s: not a directory; give the image the export serves", o.Rootfs)
				}
			}
			switch {
			case nfsVersion == 4:
				t.Version = 4
			case nfsVersion == 3 && t.Version == 4:
				return usageErr("--nfs-version 3 with an nfs4:// URL; give one or the other")
			case nfsVersion != 0 && nfsVersion != 3:
				return usageErr("--nfs-version %d: 3 or 4 (NFSv4.1)", nfsVersion)
			}
			if t.Version == 4 && mountPort != 0 {
				return usageErr("--mount-port: NFSv4 has no MOUNT service; drop it or check over nfs://")
			}
			if nfsPort != 0 {
				t.NFSPort = nfsPort
			}
			t.MountPort = mountPort
			o.Target = t
			if lock != "" {
				f, err := os.Open(lock)
				if err != nil {
					return usageErr("--lock: %w", err)
				}
				o.Lock, err = lockfile.Read(f, lock)
				f.Close()
				if err != nil {
					return usageErr("--lock: %w", err)
				}
			}
			rep, err := nfscheck.Run(cmd.Context(), o)
			if junit != "" {
				if jerr := report.WriteJUnit(junit, "check "+args[0], junitChecks(rep, err)); jerr != nil {
					return jerr
				}
			}
			if err != nil {
				// A JSON consumer gets a document either way, with
				// the step that failed.
				if asJSON {
					out := map[string]any{"server": t.Host, "path": t.Path, "pass": false, "error": err.Error()}
					var se *nfsclient.StepError
					if errors.As(err, &se) {
						out["step"] = se.Step
					}
					if rep != nil {
						out["stats"] = rep.Stats
					}
					printJSON(out)
				}
				return &exitError{code: 2, err: fmt.Errorf("%s: %w", args[0], err)}
			}
			if asJSON {
				if err := printJSON(rep); err != nil {
					return err
				}
			} else {
				printReport(rep)
			}
			if rep.Failed() {
				return &exitError{code: 1, err: fmt.Errorf("%s: checks failed", args[0])}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&nfsVersion, "nfs-version", 0, "3 or 4 (NFSv4.1); default from the URL: nfs:// is 3, nfs4:// is 4")
	cmd.Flags().StringVar(&o.Rootfs, "rootfs", "", "compare the export with this root filesystem")
	cmd.Flags().StringVar(&lock, "lock", "", "compare the export's installed packages with this lockfile")
	cmd.Flags().BoolVar(&o.Deep, "deep", false, "read every file and compare SHA256")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 60*time.Second, "give up after this long")
	cmd.Flags().IntVar(&o.Parallel, "parallel", 32, "requests in flight")
	cmd.Flags().IntVar(&o.MaxDepth, "max-depth", nfsclient.DefaultMaxDepth, "refuse an export nested deeper than this (a hostile server could present an endless tree)")
	cmd.Flags().Int64Var(&o.MaxEntries, "max-entries", nfsclient.DefaultMaxEntries, "refuse an export with more entries than this")
	cmd.Flags().IntVar(&mountPort, "mount-port", 0, "MOUNT port (default: ask the portmapper)")
	cmd.Flags().IntVar(&nfsPort, "nfs-port", 0, "NFS port (default: from the URL, or the portmapper)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&junit, "junit", "", "also write the checks to this file as JUnit XML (one testcase a check, the comparison one more), pass or fail")
	return cmd
}

// junitChecks are the testcases of a check run: the comparison with
// --rootfs or --lock as one more check, or, when the export could not be
// walked, the step that failed.
func junitChecks(rep *nfscheck.Report, err error) []report.Check {
	if err != nil {
		name := "check"
		var se *nfsclient.StepError
		if errors.As(err, &se) {
			name = se.Step
		}
		return []report.Check{report.Result(name, false, err.Error())}
	}
	checks := rep.Checks
	if rep.Compared != "" {
		checks = append(slices.Clip(checks), report.Result("compare", rep.Missing+rep.Extra+rep.Changed == 0,
			fmt.Sprintf("compared with %s: %d missing, %d extra, %d changed", rep.Compared, rep.Missing, rep.Extra, rep.Changed)))
	}
	return checks
}

func printReport(r *nfscheck.Report) {
	if r.NFSVersion == "4.1" {
		fmt.Printf("server %s, NFSv4.1 path %s (nfs port %d)\n", r.Server, r.Path, r.NFSPort)
	} else {
		fmt.Printf("server %s, export %s (mount port %d, nfs port %d); exports: %v\n", r.Server, r.Path, r.MountPort, r.NFSPort, r.Exports)
	}
	if r.FSInfo != nil && r.NFSVersion == "4.1" {
		fmt.Printf("maxread %d\n", r.FSInfo.RTMax)
	} else if r.FSInfo != nil {
		fmt.Printf("fsinfo: rtmax %d, rtpref %d, wtmax %d, maxfilesize %d\n", r.FSInfo.RTMax, r.FSInfo.RTPref, r.FSInfo.WTMax, r.FSInfo.Size)
	}
	fmt.Printf("walked %d entries in %.2fs (%.0f entries/s, %d requests)", r.Stats.Entries, r.WalkSeconds, r.EntriesPerS, r.Stats.Requests)
	if r.ReadMBps > 0 {
		fmt.Printf(", read %s at %.0f MB/s", progress.Bytes(r.Stats.BytesRead), r.ReadMBps)
	}
	fmt.Println()
	if r.Compared != "" {
		for i, d := range r.Differences {
			if i == 200 {
				fmt.Printf("... and %d more\n", len(r.Differences)-200)
				break
			}
			switch d.Kind {
			case "changed":
				fmt.Printf("changed  %s (%s)\n", d.Path, d.Fields)
			default:
				fmt.Printf("%-8s %s\n", d.Kind, d.Path)
			}
		}
		fmt.Printf("compared with %s: %d missing, %d extra, %d changed\n", r.Compared, r.Missing, r.Extra, r.Changed)
	}
	printChecks(os.Stdout, r.Checks)
}
