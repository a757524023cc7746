// Package hook runs mmdebstrap's hooks: commands, or the special
// copy-in, copy-out, tar-in, tar-out, upload, download, sync-in and
// sync-out, at the setup, extract, essential and customize stages of a
// build, with mmdebstrap's names and meaning.
package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The stages, in the order a build reaches them.
const (
	Setup     = "setup"
	Extract   = "extract"
	Essential = "essential"
	Customize = "customize"
)

// Stages lists the stages in order.
var Stages = []string{Setup, Extract, Essential, Customize}

// Hook is one hook of one stage.
type Hook struct {
	Stage string `json:"stage"`
	// Command is the hook as given: a shell command, an executable, or a
	// special hook with its arguments.
	Command string `json:"command"`
	// Chrooted runs the command inside the image, through nroot's runner
	// (mmdebstrap's --chrooted-STAGE-hook).
	Chrooted bool `json:"chrooted,omitempty"`
	// Origin says where the hook came from: the flag, or the file of a
	// --hook-directory.
	Origin  string `json:"origin"`
	special []string
}

// Error is a hook that failed; the build stops on it.
type Error struct {
	Hook Hook
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s hook %q (from %s) failed: %v", e.Hook.Stage, e.Hook.Command, e.Hook.Origin, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrUsage marks a hook that cannot run as given (an unknown stage, a
// special hook with the wrong arguments, a hook directory that is not
// one).
var ErrUsage = errors.New("hook")

// New checks a hook given on the command line. origin names the flag.
func New(stage, command string, chrooted bool, origin string) (Hook, error) {
	if !validStage(stage) {
		return Hook{}, fmt.Errorf("%w: unknown stage %q (one of %s)", ErrUsage, stage, strings.Join(Stages, ", "))
	}
	if strings.TrimSpace(command) == "" {
		return Hook{}, fmt.Errorf("%w: %s: give a command", ErrUsage, origin)
	}
	h := Hook{Stage: stage, Command: command, Chrooted: chrooted, Origin: origin}
	if op, _, ok := strings.Cut(command, " "); ok && specialArity[op] != 0 && !chrooted {
		args, err := SplitWords(command)
		if err != nil {
			return Hook{}, fmt.Errorf("%w: %s %q: %v", ErrUsage, origin, command, err)
		}
		if err := checkSpecial(args); err != nil {
			return Hook{}, fmt.Errorf("%w: %s %q: %v", ErrUsage, origin, command, err)
		}
		h.special = args
	}
	return h, nil
}

func validStage(s string) bool {
	for _, st := range Stages {
		if s == st {
			return true
		}
	}
	return false
}

// Directory reads a --hook-directory as mmdebstrap does: the executable
// files whose names start with a stage's name become that stage's hooks,
// in name order; subdirectories are not read. A file named like a hook
// but not executable is an error here (mmdebstrap only warns, and the
// build then lacks the step).
func Directory(dir string) ([]Hook, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: --hook-directory: %v", ErrUsage, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: --hook-directory %s is not a directory", ErrUsage, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: --hook-directory: %v", ErrUsage, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var out []Hook
	for _, stage := range Stages {
		var names []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), stage) {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			p := filepath.Join(abs, n)
			st, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("%w: --hook-directory: %v", ErrUsage, err)
			}
			if st.IsDir() {
				continue
			}
			if st.Mode()&0o111 == 0 {
				return nil, fmt.Errorf("%w: %s is named like a %s hook but is not executable (chmod +x it, or rename it)", ErrUsage, p, stage)
			}
			out = append(out, Hook{Stage: stage, Command: p, Origin: "--hook-directory " + dir})
		}
	}
	return out, nil
}

// Env is what hooks run with.
type Env struct {
	// Target is the image being built, given to commands as $1.
	Target string
	// Mode is mmdebstrap's mode name, given as MMDEBSTRAP_MODE.
	Mode string
	// Include and Essential are given as MMDEBSTRAP_INCLUDE and (to
	// extract hooks) MMDEBSTRAP_ESSENTIAL.
	Include   []string
	Essential []string
	Verbosity int
	// Stdout and Stderr receive what hooks print.
	Stdout, Stderr io.Writer
	// Chroot runs a shell command inside the image, with env added to its
	// environment: nroot's runner. Chrooted hooks need it.
	Chroot func(ctx context.Context, command string, env []string) error
	// Timeout bounds each hook (0: none but ctx).
	Timeout time.Duration
}

// Run runs the hooks of one stage, in order, and stops at the first that
// fails.
func Run(ctx context.Context, hooks []Hook, stage string, env Env) error {
	for _, h := range hooks {
		if h.Stage != stage {
			continue
		}
		if err := run(ctx, h, env); err != nil {
			return &Error{Hook: h, Err: err}
		}
	}
	return nil
}

// Has reports whether any hook runs at stage.
func Has(hooks []Hook, stage string) bool {
	for _, h := range hooks {
		if h.Stage == stage {
			return true
		}
	}
	return false
}

var plainCommand = regexp.MustCompile(`^[\w@%+=:,./-]+$`)

func run(ctx context.Context, h Hook, env Env) error {
	if env.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, env.Timeout)
		defer cancel()
	}
	if h.special != nil {
		return runSpecial(ctx, h.special, env)
	}
	vars := environ(h.Stage, env)
	if h.Chrooted {
		if env.Chroot == nil {
			return fmt.Errorf("no runner for a chrooted hook")
		}
		return env.Chroot(ctx, h.Command, vars)
	}
	var cmd *exec.Cmd
	if fi, err := os.Stat(h.Command); (err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0) || plainCommand.MatchString(h.Command) {
		// An executable, or a command with no shell syntax: run
		// directly, as mmdebstrap does.
		cmd = exec.CommandContext(ctx, h.Command, env.Target)
	} else {
		cmd = exec.CommandContext(ctx, "sh", "-c", h.Command, "exec", env.Target)
	}
	cmd.Env = append(hostEnv(), vars...)
	cmd.Stdout, cmd.Stderr = env.Stdout, env.Stderr
	cmd.Dir = "/"
	// The hook and whatever it starts form one process group, stopped
	// together when the build is cancelled: SIGTERM first, then, after
	// killGrace, SIGKILL for the hook and, once it is gone, for whatever
	// of its group is left (a child that ignores SIGTERM, or still holds
	// the output).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var kill *time.Timer
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		kill = time.AfterFunc(killGrace, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
		return syscall.Kill(-pgid, syscall.SIGTERM)
	}
	cmd.WaitDelay = 10 * time.Second // the output, if something outside the group holds it
	err := cmd.Run()
	if kill != nil { // set by Cancel, which Run waits for
		kill.Stop()
	}
	if ctx.Err() != nil {
		if cmd.Process != nil {
			// The hook ended on SIGTERM, perhaps before its children:
			// the group outlives its leader while one of them runs,
			// and its ID is not reused meanwhile.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return ctx.Err()
	}
	return err
}

// killGrace is how long a cancelled command hook has to end on SIGTERM
// before its process group is killed.
const killGrace = 2 * time.Second

// hostEnv is the environment hooks inherit, without TMPDIR and
// APT_CONFIG, as mmdebstrap removes them.
func hostEnv() []string {
	var out []string
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "TMPDIR=") || strings.HasPrefix(e, "APT_CONFIG=") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// environ is mmdebstrap's hook environment.
func environ(stage string, env Env) []string {
	mode := env.Mode
	if mode == "" {
		mode = "root"
	}
	inc := make([]string, len(env.Include))
	for i, s := range env.Include {
		inc[i] = strings.NewReplacer("%", "%25", ",", "%2C").Replace(s)
	}
	vars := []string{
		"MMDEBSTRAP_MODE=" + mode,
		"MMDEBSTRAP_HOOK=" + stage,
		"MMDEBSTRAP_VERBOSITY=" + strconv.Itoa(env.Verbosity),
		"MMDEBSTRAP_INCLUDE=" + strings.Join(inc, ","),
	}
	if stage == Extract && len(env.Essential) > 0 {
		vars = append(vars, "MMDEBSTRAP_ESSENTIAL="+strings.Join(env.Essential, " "))
	}
	return vars
}
