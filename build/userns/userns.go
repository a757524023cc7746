// Package userns runs nroot without root on the host, as mmdebstrap's
// unshare mode does: nroot starts itself again in a new user namespace
// where it is root, with the caller's own ID as 0 and a subordinate ID
// range from /etc/subuid and /etc/subgid as 1 and up, mapped by the
// setuid helpers newuidmap and newgidmap. Files then get their true
// owners inside the namespace, and a tarball written there carries them.
package userns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HelperArg is the first argument of the process started in the new
// namespace. It waits there until its ID maps are written, then
// executes nroot again with the original arguments: only an exec after
// the maps exist gives it root's capabilities in the namespace.
const HelperArg = "__nroot-userns-helper"

// envInside marks the process nroot executes once the maps are written.
const envInside = "NROOT_USERNS"

// MinIDs is the smallest subordinate range nroot accepts: Debian's
// packages use IDs up to 65535 (nogroup and nobody are 65534).
const MinIDs = 65536

// ErrNoSubIDs says the user has no usable subordinate ID range or the
// helpers that map one are missing.
var ErrNoSubIDs = errors.New("no subordinate IDs")

// Range maps Count IDs from Inside in the namespace to Outside.
type Range struct {
	Inside, Outside, Count uint32
}

// Inside reports whether this process runs in a user namespace that
// maps something other than every ID to itself: the namespace nroot
// started, or any other (a rootless container).
func Inside() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// started is set by RunHelper in the process nroot executed in a
// namespace it made.
var started bool

// Started reports whether this process is the one nroot executed in a
// namespace it made.
func Started() bool { return started }

// SubIDs reads a subordinate ID file (/etc/subuid or /etc/subgid
// format: NAME-OR-ID:START:COUNT per line) and returns the first range
// of at least min IDs that belongs to the user name or numeric id.
func SubIDs(r io.Reader, name string, id int, min uint32) (Range, error) {
	sc := bufio.NewScanner(io.LimitReader(r, 16<<20))
	sc.Buffer(make([]byte, 4096), 4096)
	largest := uint32(0)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 || (f[0] != name && f[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 || start+count > 1<<32-1 {
			return Range{}, fmt.Errorf("line %d: %q is not NAME:START:COUNT", n, line)
		}
		if uint32(count) >= min {
			return Range{Inside: 1, Outside: uint32(start), Count: uint32(count)}, nil
		}
		largest = max(largest, uint32(count))
	}
	if err := sc.Err(); err != nil {
		return Range{}, err
	}
	if largest > 0 {
		return Range{}, fmt.Errorf("the largest range of %s has %d IDs, fewer than %d: %w", name, largest, min, ErrNoSubIDs)
	}
	return Range{}, fmt.Errorf("no range for %s: %w", name, ErrNoSubIDs)
}

// Maps are the UID and GID maps of the namespace: root inside is the
// caller, 1 and up the subordinate range.
type Maps struct {
	UID, GID []Range
}

// CallerMaps builds the maps for the calling user from /etc/subuid and
// /etc/subgid.
func CallerMaps() (Maps, error) {
	u, err := user.Current()
	if err != nil {
		return Maps{}, fmt.Errorf("userns: who am I: %w", err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	var m Maps
	for _, x := range []struct {
		file string
		id   int
		dst  *[]Range
	}{{"/etc/subuid", uid, &m.UID}, {"/etc/subgid", gid, &m.GID}} {
		f, err := os.Open(x.file)
		if err != nil {
			return Maps{}, fmt.Errorf("%s: %w: %w", x.file, ErrNoSubIDs, err)
		}
		// subgid lines name the user too, as useradd writes them.
		r, err := SubIDs(f, u.Username, uid, MinIDs)
		f.Close()
		if err != nil {
			return Maps{}, fmt.Errorf("%s: %w", x.file, err)
		}
		*x.dst = []Range{{Inside: 0, Outside: uint32(x.id), Count: 1}, r}
	}
	return m, nil
}

// mapArgs is the newuidmap/newgidmap command line for pid.
func mapArgs(prog string, pid int, rs []Range) []string {
	args := []string{prog, strconv.Itoa(pid)}
	for _, r := range rs {
		args = append(args, strconv.FormatUint(uint64(r.Inside), 10), strconv.FormatUint(uint64(r.Outside), 10), strconv.FormatUint(uint64(r.Count), 10))
	}
	return args
}

// Reexec runs nroot again, with this process's arguments, as root of a
// new user namespace with maps m, and returns its exit status. The
// caller waits for it and exits with that status; signals from the
// terminal reach both, and the child dies with its parent.
func Reexec(m Maps) (int, error) {
	var helpers [2]string
	for i, name := range []string{"newuidmap", "newgidmap"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return 0, fmt.Errorf("userns: %s not found: %w; install it (Debian package uidmap)", name, ErrNoSubIDs)
		}
		helpers[i] = p
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("userns: finding nroot itself: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	defer pw.Close()
	cmd := exec.Command(self, append([]string{HelperArg}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{pr}
	cmd.Env = append(os.Environ(), envInside+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("userns: starting nroot in a new user namespace: %w; the kernel may forbid unprivileged user namespaces (sysctl user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns)", err)
	}
	pr.Close()
	pid := cmd.Process.Pid
	// Signals sent to this process alone (a service manager's SIGTERM)
	// reach the build too; the terminal's reach both anyway.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer func() { signal.Stop(sigs); close(sigs) }()
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	for i, rs := range [][]Range{m.UID, m.GID} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, helpers[i], mapArgs(helpers[i], pid, rs)[1:]...).CombinedOutput()
		cancel()
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, fmt.Errorf("userns: %s: %s: %w (%w)", strings.Join(mapArgs(helpers[i], pid, rs), " "), strings.TrimSpace(string(out)), err, ErrNoSubIDs)
		}
	}
	if _, err := pw.Write([]byte{1}); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("userns: releasing the child: %w", err)
	}
	pw.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, fmt.Errorf("userns: %w", err)
}

// RunHelper is the helper's part: when the process was started as one
// it waits for its maps and executes nroot again, and never returns;
// otherwise it returns at once. nroot calls it first thing in main.
func RunHelper() {
	if len(os.Args) < 2 || os.Args[1] != HelperArg {
		if os.Getenv(envInside) == "1" && Inside() {
			// What nroot runs from here (hooks, maintainer scripts)
			// must not take itself for this process.
			started = true
			os.Unsetenv(envInside)
			// The exec that made this process root here cleared the
			// death signal its parent set; it must still die with
			// nroot outside.
			unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
			if os.Getppid() == 1 {
				os.Exit(128 + int(syscall.SIGKILL))
			}
		}
		return
	}
	err := helperMain()
	fmt.Fprintf(os.Stderr, "nroot: user namespace: %v\n", err)
	os.Exit(127)
}

func helperMain() error {
	if err := unix.SetNonblock(3, true); err != nil {
		return fmt.Errorf("no sync pipe: %w", err)
	}
	sync := os.NewFile(3, "sync")
	// The parent writes one byte once both maps are in place, or dies
	// and closes the pipe; it is our parent, so a bound wait is needless,
	// but a parent that hangs must not keep us forever.
	sync.SetReadDeadline(time.Now().Add(time.Minute))
	var b [1]byte
	if n, err := sync.Read(b[:]); n != 1 {
		return fmt.Errorf("the parent did not write the ID maps: %v", err)
	}
	sync.Close()
	if os.Getuid() != 0 {
		return fmt.Errorf("uid is %d, not 0, after the maps were written", os.Getuid())
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(self, append([]string{os.Args[0]}, os.Args[2:]...), os.Environ())
}
