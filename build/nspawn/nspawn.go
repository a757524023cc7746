// Package nspawn runs commands inside a root filesystem with
// systemd-nspawn, or chroot where nspawn is missing. It is the only part
// of nroot that executes code from an image, and it adapts to what the
// host allows.
package nspawn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nroot/build/userns"
	"nroot/internal/fsroot"
)

// Host describes what the machine nroot runs on allows.
type Host struct {
	Nspawn      string // path of systemd-nspawn, "" when absent
	SystemdPID1 bool   // the host was booted with systemd
	SystemBus   bool   // a system D-Bus socket exists
	UserNS      bool   // nroot runs in a user namespace (rootless): chroot runner only
	// SuppressSync: this systemd-nspawn has --suppress-sync (systemd 250
	// and later).
	SuppressSync bool
	// NoMounts: the process lacks CAP_SYS_ADMIN (a container that is not
	// privileged), so it can neither run systemd-nspawn nor mount: the
	// chroot runner enters the image with nothing mounted in it, as
	// mmdebstrap's root mode then does.
	NoMounts bool
}

// DetectHost looks at the running system.
func DetectHost() Host {
	h := Host{}
	h.Nspawn, _ = exec.LookPath("systemd-nspawn")
	if h.Nspawn != "" {
		h.SuppressSync = nspawnVersion(h.Nspawn) >= 250
	}
	// sd_booted(): systemd creates this directory when it is PID 1.
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		h.SystemdPID1 = true
	}
	if _, err := os.Stat("/run/dbus/system_bus_socket"); err == nil {
		h.SystemBus = true
	}
	h.UserNS = userns.Inside()
	h.NoMounts = !hasCapSysAdmin()
	return h
}

// nspawnVersion is systemd's version number as the program at path says
// it ("systemd 252 (252.39-1~deb12u2)"), 0 when it cannot tell.
func nspawnVersion(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0
	}
	return parseSystemdVersion(string(out))
}

// parseSystemdVersion reads the number from the first line of systemd's
// --version output; 0 when it is not there.
func parseSystemdVersion(s string) int {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "systemd" {
		return 0
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Flags returns the systemd-nspawn flags this host needs. Without a
// systemd PID 1 or a system bus, nspawn cannot register the container
// with machined nor create a scope unit, so both are turned off.
func (h Host) Flags() []string {
	if h.SystemdPID1 && h.SystemBus {
		return nil
	}
	return []string{"--register=no", "--keep-unit"}
}

// Mode is how a command runs.
type Mode int

const (
	// Pipe runs a command with its output captured: the default.
	Pipe Mode = iota
	// Interactive gives the command the terminal.
	Interactive
	// Boot boots the image's init as a container.
	Boot
)

// Runner runs commands in one root.
type Runner struct {
	Root string
	Host Host
	// Env is added to the container's environment ("NAME=value").
	Env []string
	// Binds are extra bind mounts ("SRC:DST").
	Binds []string
	// DNS gives the command the host's resolvers for the duration, and
	// puts the image's own /etc/resolv.conf back afterwards.
	DNS bool
	// Chroot forces the chroot runner even when nspawn exists.
	Chroot bool
	// NoSync makes the command's sync, fsync and fdatasync calls do
	// nothing, as eatmydata does, where the host's systemd-nspawn can
	// (--suppress-sync): dpkg syncs its database for every package
	// state it records. The caller then syncs the tree once, when it is
	// done with it (fsroot.Root.Sync).
	NoSync bool
	// Stdin, Stdout and Stderr are nothing by default (Run keeps the
	// output's tail for its error); Shell and Boot get the terminal only
	// when the caller gives it here.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// DefaultEnv is the environment every command runs with.
var DefaultEnv = []string{"DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true", "LC_ALL=C.UTF-8", "LANGUAGE=C.UTF-8", "LANG=C.UTF-8",
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// New returns a runner for root on this host. It fails when the root's
// architecture cannot run here.
func New(root string) (*Runner, error) {
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("nspawn: %s is not a directory", root)
	}
	if err := CheckArch(root); err != nil {
		return nil, err
	}
	return &Runner{Root: root, Host: DetectHost(), Env: append([]string(nil), DefaultEnv...)}, nil
}

// BindPackageCache gives the image a package cache of its own below dir
// (created if needed), bind-mounted over its /var/cache/apt/archives, so
// packages apt downloads inside are kept between runs on that image.
// Images never share one: code running in one image could otherwise
// plant packages that apt in another would install.
func (r *Runner) BindPackageCache(dir string) error {
	own, err := PackageCacheDir(dir, r.Root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(own+"/partial", 0o700); err != nil {
		return fmt.Errorf("nspawn: package cache: %w", err)
	}
	// The mount point is made inside the image, never through its
	// symlinks onto the host.
	img, err := fsroot.Open(r.Root)
	if err != nil {
		return fmt.Errorf("nspawn: %w", err)
	}
	defer img.Close()
	if err := img.MkdirAll("var/cache/apt/archives", 0o755); err != nil {
		return fmt.Errorf("nspawn: package cache: %w", err)
	}
	r.Binds = append(r.Binds, own+":/var/cache/apt/archives")
	return nil
}

// PackageCacheDir is the package cache below dir that belongs to the
// image at root: one directory per image path.
func PackageCacheDir(dir, root string) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("nspawn: %w", err)
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])), nil
}

// Name says which runner will be used.
func (r *Runner) Name() string {
	// systemd-nspawn needs root on the host, which a user namespace's
	// root is not.
	if r.Chroot || r.Host.Nspawn == "" || r.Host.UserNS || r.Host.NoMounts {
		return "chroot"
	}
	return "systemd-nspawn"
}

// nspawnArgs returns the systemd-nspawn command line for argv.
func (r *Runner) nspawnArgs(mode Mode, argv []string) []string {
	// --timezone=off, --resolv-conf=off and --link-journal=no: nspawn
	// would otherwise rewrite the image's /etc/localtime and
	// /etc/resolv.conf and make a /var/log/journal in it, which the
	// chroot runner (as mmdebstrap) does not.
	args := []string{r.Host.Nspawn, "--quiet", "--directory=" + r.Root, "--timezone=off", "--resolv-conf=off", "--link-journal=no"}
	switch mode {
	case Pipe:
		args = append(args, "--as-pid2", "--console=pipe")
	case Interactive:
		args = append(args, "--as-pid2", "--console=interactive")
	case Boot:
		args = append(args, "--boot")
	}
	args = append(args, r.Host.Flags()...)
	if r.NoSync && r.Host.SuppressSync {
		args = append(args, "--suppress-sync=yes")
	}
	for _, e := range r.Env {
		args = append(args, "--setenv="+e)
	}
	for _, b := range r.Binds {
		args = append(args, "--bind="+b)
	}
	if mode == Boot {
		return args
	}
	return append(append(args, "--"), argv...)
}

// ExitError is a command that ran and failed inside the image.
type ExitError struct {
	Argv   []string
	Status int
	Output string // the tail of what it printed, for the error report
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s exited with status %d inside the image", strings.Join(e.Argv, " "), e.Status)
	if e.Output != "" {
		msg += "; its output ends:\n" + e.Output
	}
	return msg
}

// Run runs argv in the image and waits. Output goes to Stdout/Stderr
// (when set), and its tail is kept for the error. Cancelling ctx stops
// the command with SIGTERM, so nspawn can remove its mounts, and kills it
// if it has not stopped 10 seconds later. An exit status other than 0 is
// an *ExitError.
func (r *Runner) Run(ctx context.Context, argv ...string) error {
	return r.run(ctx, Pipe, argv)
}

// Shell runs argv, or an interactive shell, on the terminal.
func (r *Runner) Shell(ctx context.Context, argv ...string) error {
	if len(argv) == 0 {
		argv = []string{"/bin/bash", "-l"}
		if !bashIn(r.Root) {
			argv = []string{"/bin/sh", "-l"}
		}
	}
	return r.run(ctx, Interactive, argv)
}

// Boot boots the image's init in a container until it powers off.
func (r *Runner) Boot(ctx context.Context) error {
	if r.Name() != "systemd-nspawn" {
		return fmt.Errorf("nspawn: booting an image needs systemd-nspawn (package systemd-container)")
	}
	return r.run(ctx, Boot, nil)
}

func (r *Runner) run(ctx context.Context, mode Mode, argv []string) error {
	var args []string
	switch {
	case r.Name() == "systemd-nspawn":
		args = r.nspawnArgs(mode, argv)
	default:
		var err error
		if r.Host.NoMounts && len(r.Binds) > 0 {
			return fmt.Errorf("chroot runner: bind-mounting %s needs CAP_SYS_ADMIN, which this process lacks; run nroot in a privileged container, or without the bind", strings.Join(r.Binds, ", "))
		}
		if args, err = helperCommand(r.Root, r.Binds, argv, r.Host.NoMounts); err != nil {
			return err
		}
	}
	if r.DNS {
		restore, err := provideDNS(r.Root)
		if err != nil {
			return err
		}
		defer restore()
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if r.Name() == "chroot" {
		// The command, and whatever it starts, are stopped as a group;
		// the environment is the runner's alone.
		cmd.SysProcAttr = helperSysProcAttr(mode == Pipe, r.Host.UserNS, r.Host.NoMounts)
		cmd.Env = r.Env
		if mode == Pipe {
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
		}
	}
	cmd.WaitDelay = 10 * time.Second
	tail := &tailBuffer{max: 16 << 10}
	cmd.Stdin = r.Stdin
	if mode == Interactive || mode == Boot {
		// The caller gives the terminal (Stdin, Stdout, Stderr).
		cmd.Stdout, cmd.Stderr = r.Stdout, r.Stderr
	} else {
		lf := &lineFilter{w: tee(r.Stderr, tail)}
		defer lf.flush()
		cmd.Stdout, cmd.Stderr = tee(r.Stdout, tail), lf
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", r.Name(), r.Root, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Argv: argv, Status: ee.ExitCode(), Output: filterNoise(tail.String())}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.Name(), r.Root, err)
	}
	return nil
}

func tee(w io.Writer, tail *tailBuffer) io.Writer {
	if w == nil {
		return tail
	}
	return io.MultiWriter(w, tail)
}

// lineFilter passes whole lines through, minus nspawn's noise.
type lineFilter struct {
	w   io.Writer
	buf []byte
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	for {
		i := bytes.IndexByte(f.buf, '\n')
		if i < 0 {
			break
		}
		line := f.buf[:i+1]
		if !bytes.HasPrefix(line, []byte(noise)) {
			if _, err := f.w.Write(line); err != nil {
				return len(p), err
			}
		}
		f.buf = f.buf[i+1:]
	}
	return len(p), nil
}

func (f *lineFilter) flush() {
	if len(f.buf) > 0 && !bytes.HasPrefix(f.buf, []byte(noise)) {
		f.w.Write(f.buf)
	}
	f.buf = nil
}

const noise = "Attempted to remove disk file system under"

// filterNoise drops nspawn's own complaint about cleaning a propagation
// directory on hosts whose /run is not a tmpfs; it is harmless.
func filterNoise(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, noise) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimRight(string(t.buf), "\n") }

// bashIn reports whether the image has a bash to run, resolved inside it.
func bashIn(root string) bool {
	img, err := fsroot.Open(root)
	if err != nil {
		return false
	}
	defer img.Close()
	return img.IsRegular("bin/bash")
}

// capSysAdmin is CAP_SYS_ADMIN's bit in the capability sets.
const capSysAdmin = 21

// hasCapSysAdmin reports whether this process may mount and make
// namespaces: CAP_SYS_ADMIN in its effective set. It is assumed when the
// set cannot be read.
func hasCapSysAdmin() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	eff, ok := capEff(string(b))
	return !ok || eff&(1<<capSysAdmin) != 0
}

// capEff reads the CapEff line of /proc/PID/status.
func capEff(status string) (uint64, bool) {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, false // ParseUint gives the largest value on overflow
			}
			return n, true
		}
	}
	return 0, false
}
