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
	"slices"
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
	if !slices.Contains(Stages, stage) {
		return Hook{}, fmt.Errorf("%w: unknown stage %q (one of %s)", ErrUsage, stage, strings.Join(Stages, ", "))
	}
	if strings.TrimSpace(command) == "" {
		return Hook{}, fmt.Errorf("%w: %s: give a command", ErrUsage, origin)
	}
	h := Hook{Stage: stage, Command: command, Chrooted: chrooted, Origin: origin}
	if err := checkHookHelper(command, origin); err != nil {
		return Hook{}, err
	}
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
			if err := checkHookHelper(p, "--hook-directory"); err != nil {
				return nil, err
			}
			out = append(out, Hook{Stage: stage, Command: p, Origin: "--hook-directory " + dir})
		}
	}
	return out, nil
}

// hookHelperUse is what a hook that talks to mmdebstrap's --hook-helper
// says: nroot has no helper, so such a hook is refused before the build
// rather than failing half-way.
var hookHelperUse = []string{"MMDEBSTRAP_HOOKSOCK", "--hook-helper"}

// maxHookScript bounds how much of a hook file is read for that check.
const maxHookScript = 1 << 20

// checkHookHelper refuses a hook (a command, or the file it names) that
// uses mmdebstrap's --hook-helper.
func checkHookHelper(command, origin string) error {
	text := command
	if fi, err := os.Stat(command); err != nil || !fi.Mode().IsRegular() {
		// not a file: the command is the text
	} else if f, err := os.Open(command); err == nil {
		b, _ := io.ReadAll(io.LimitReader(f, maxHookScript))
		f.Close()
		text = string(b)
	}
	for _, w := range hookHelperUse {
		if strings.Contains(text, w) {
			return fmt.Errorf("%w: %s %s names %s: it talks to mmdebstrap's --hook-helper, which nroot does not have; give the special hooks (copy-in, sync-in, upload, ...) as --STAGE-hook arguments instead", ErrUsage, origin, command, w)
		}
	}
	if strings.Contains(text, noMergedUsr) {
		return fmt.Errorf("%w: %s %s writes %s to keep /usr unmerged (mmdebstrap's no-merged-usr hooks); nroot always merges /usr: leave the hook out", ErrUsage, origin, command, noMergedUsr)
	}
	return nil
}

// noMergedUsr is the file mmdebstrap's no-merged-usr hooks write to keep
// /usr unmerged: nroot would merge it anyway, a wrong result, so such a
// hook is refused.
const noMergedUsr = "unsupported-skip-usrmerge-conversion"

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
	// AptConfig is an apt configuration file for the image, outside it,
	// given as MMDEBSTRAP_APT_CONFIG: apt run with it as APT_CONFIG
	// works on the image and reads no configuration of the host's.
	AptConfig string
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
	// $1 is absolute, as hooks run in the caller's directory: a
	// relative target would otherwise be read against whatever
	// directory the hook changes to, and "$1"/... land on the host.
	if abs, err := filepath.Abs(env.Target); err == nil {
		env.Target = abs
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
	var argv []string
	if fi, err := os.Stat(h.Command); (err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0) || plainCommand.MatchString(h.Command) {
		// An executable, or a command with no shell syntax: run
		// directly, as mmdebstrap does.
		argv = []string{h.Command, env.Target}
	} else {
		argv = []string{"sh", "-c", h.Command, "exec", env.Target}
	}
	err := runCommand(ctx, argv, env, vars)
	if errors.Is(err, syscall.ENOEXEC) {
		// A script without "#!": run by the shell, as execvp(3) (and
		// so mmdebstrap's system()) runs it.
		err = runCommand(ctx, append([]string{"sh"}, argv...), env, vars)
	}
	return err
}

// runCommand runs one command hook in the caller's directory, as
// mmdebstrap runs them, in a process group of its own. When the hook
// ends, or the build is cancelled, the whole group is killed, so that
// nothing the hook left running in the background outlives it and
// writes into the image later.
func runCommand(ctx context.Context, argv []string, env Env, vars []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(hostEnv(), vars...)
	// The output goes through pipes of our own, not exec's: a
	// background child holding one open must not keep Wait waiting.
	stdout, doneOut, err := pipeTo(env.Stdout)
	if err != nil {
		return err
	}
	defer doneOut()
	stderr, doneErr := stdout, func() {}
	if env.Stderr != env.Stdout {
		if stderr, doneErr, err = pipeTo(env.Stderr); err != nil {
			return err
		}
		defer doneErr()
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	// The child has its copies; ours are closed so that the readers see
	// the end once the child's are.
	stdout.Close()
	stderr.Close()
	if err != nil {
		return err
	}
	pgid := cmd.Process.Pid
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		// SIGTERM first; after killGrace, SIGKILL.
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case err = <-waited:
		case <-time.After(killGrace):
			syscall.Kill(-pgid, syscall.SIGKILL)
			err = <-waited
		}
	}
	// The group outlives its leader while one of its processes runs, and
	// its ID is not reused meanwhile.
	syscall.Kill(-pgid, syscall.SIGKILL)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// pipeTo returns the writing end of a pipe whose output is copied to w
// (nothing: discarded), and the function that waits for the copy to end
// and closes the reading end. The wait is bounded: a process that left
// the hook's group (setsid) may hold the pipe open.
func pipeTo(w io.Writer) (*os.File, func(), error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	if w == nil {
		w = io.Discard
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(w, pr)
	}()
	return pw, func() {
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
		}
		pr.Close()
	}, nil
}

// killGrace is how long a cancelled command hook has to end on SIGTERM
// before its process group is killed.
const killGrace = 2 * time.Second

// hostEnv is the environment hooks inherit: nroot's, without TMPDIR and
// APT_CONFIG, with what mmdebstrap sets for the whole run (debconf
// non-interactive, the C.UTF-8 locale, dpkg's directories at the end of
// PATH).
func hostEnv() []string {
	var out []string
	path := ""
	for _, e := range os.Environ() {
		name, value, _ := strings.Cut(e, "=")
		switch name {
		case "TMPDIR", "APT_CONFIG", "DEBIAN_FRONTEND", "DEBCONF_NONINTERACTIVE_SEEN", "LC_ALL", "LANGUAGE", "LANG":
			continue
		case "PATH":
			path = value
			continue
		}
		out = append(out, e)
	}
	if path != "" {
		path += ":"
	}
	return append(out, "DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true",
		"LC_ALL=C.UTF-8", "LANGUAGE=C.UTF-8", "LANG=C.UTF-8", "PATH="+path+dpkgPath)
}

// dpkgPath is apt's DPkg::Path, which mmdebstrap appends to PATH.
const dpkgPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
	if env.AptConfig != "" {
		vars = append(vars, "MMDEBSTRAP_APT_CONFIG="+env.AptConfig)
	}
	if stage == Extract && len(env.Essential) > 0 {
		vars = append(vars, "MMDEBSTRAP_ESSENTIAL="+strings.Join(env.Essential, " "))
	}
	return vars
}
