// Package nspawn runs commands inside a root filesystem with
// systemd-nspawn. It is the only part of nroot that executes code from an
// image, and it adapts its flags to what the host allows.
package nspawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Host describes what the machine nroot runs on allows.
type Host struct {
	Nspawn      string // path of systemd-nspawn, "" when absent
	SystemdPID1 bool   // the host was booted with systemd
	SystemBus   bool   // a system D-Bus socket exists
}

// DetectHost looks at the running system.
func DetectHost() Host {
	h := Host{}
	h.Nspawn, _ = exec.LookPath("systemd-nspawn")
	// sd_booted(): systemd creates this directory when it is PID 1.
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		h.SystemdPID1 = true
	}
	if _, err := os.Stat("/run/dbus/system_bus_socket"); err == nil {
		h.SystemBus = true
	}
	return h
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

// Runner runs commands in one root.
type Runner struct {
	Root string
	Host Host
	// Env is added to the container's environment ("NAME=value").
	Env []string
	// Binds are extra bind mounts ("SRC:DST").
	Binds []string
	// ResolvConf is nspawn's --resolv-conf mode; "off" leaves the
	// image's resolv.conf untouched.
	ResolvConf string
}

// ErrNoNspawn says systemd-nspawn is not installed.
var ErrNoNspawn = errors.New("systemd-nspawn not found; install systemd-container")

// DefaultEnv is the environment every command runs with.
var DefaultEnv = []string{"DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true", "LC_ALL=C.UTF-8", "LANGUAGE=C.UTF-8", "LANG=C.UTF-8",
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// New returns a runner for root on this host.
func New(root string) (*Runner, error) {
	h := DetectHost()
	if h.Nspawn == "" {
		return nil, ErrNoNspawn
	}
	return &Runner{Root: root, Host: h, Env: append([]string(nil), DefaultEnv...), ResolvConf: "off"}, nil
}

// Args returns the full command line for argv.
func (r *Runner) Args(argv ...string) []string {
	// --timezone=off: nspawn would otherwise rewrite the image's
	// /etc/localtime to the build host's zone.
	args := []string{r.Host.Nspawn, "--quiet", "--directory=" + r.Root, "--as-pid2", "--console=pipe", "--timezone=off"}
	args = append(args, r.Host.Flags()...)
	if r.ResolvConf != "" {
		args = append(args, "--resolv-conf="+r.ResolvConf)
	}
	for _, e := range r.Env {
		args = append(args, "--setenv="+e)
	}
	for _, b := range r.Binds {
		args = append(args, "--bind="+b)
	}
	return append(append(args, "--"), argv...)
}

// ExitError is a command that ran and failed inside the container.
type ExitError struct {
	Argv   []string
	Status int
	Output string // the tail of what it printed, for the error report
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s exited with status %d inside the container", strings.Join(e.Argv, " "), e.Status)
	if e.Output != "" {
		msg += "; its output ends:\n" + e.Output
	}
	return msg
}

// Run runs argv in the container, streaming its output to out (which may
// be nil) and keeping the tail for the error. Cancelling ctx stops the
// container with SIGTERM, so nspawn can remove its mounts, and kills it
// if it has not stopped 10 seconds later.
func (r *Runner) Run(ctx context.Context, stdin io.Reader, out io.Writer, argv ...string) error {
	args := r.Args(argv...)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdin = stdin
	tail := &tailBuffer{max: 8 << 10}
	w := io.Writer(tail)
	if out != nil {
		w = io.MultiWriter(out, tail)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("nspawn %s: %w", r.Root, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Argv: argv, Status: ee.ExitCode(), Output: tail.String()}
	}
	if err != nil {
		return fmt.Errorf("nspawn %s: %w", r.Root, err)
	}
	return nil
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
