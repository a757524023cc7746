package nspawn

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// HelperArg is the first argument nroot is started with to be the chroot
// runner's helper: nroot runs itself in a new mount namespace, mounts
// /proc, /sys and /dev into the image, enters it and executes the
// command. No util-linux, coreutils or shell is needed on the host.
const HelperArg = "__nroot-chroot-helper"

// RunHelper runs the helper when the process was started as one, and
// never returns then; otherwise it returns at once. A program that uses
// the chroot runner calls it first thing in main (and in TestMain).
func RunHelper() {
	if len(os.Args) < 2 || os.Args[1] != HelperArg {
		return
	}
	err := helperMain(os.Args[2:])
	fmt.Fprintf(os.Stderr, "nroot: chroot runner: %v\n", err)
	os.Exit(127)
}

// helperCommand is the helper's command line for root, binds and argv.
func helperCommand(root string, binds, argv []string, noMounts bool) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("chroot runner: finding nroot itself: %w", err)
	}
	args := []string{self, HelperArg, root}
	if noMounts {
		args = append(args, noMountsArg)
	}
	for _, b := range binds {
		args = append(args, "--bind="+b)
	}
	return append(append(args, "--"), argv...), nil
}

// helperSysProcAttr starts the helper in a mount namespace of its own,
// killed if nroot dies. In a user namespace it gets a PID namespace too:
// the kernel lets the namespace's root mount a /proc only for a PID
// namespace it owns. The command is then PID 1 there, and whatever it
// leaves running dies with it.
// Without CAP_SYS_ADMIN (noMounts) no namespace can be made: the helper
// stays in nroot's and mounts nothing.
func helperSysProcAttr(setpgid, userNS, noMounts bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL, Setpgid: setpgid}
	if noMounts {
		a.Cloneflags = 0
		return a
	}
	if userNS {
		a.Cloneflags |= unix.CLONE_NEWPID
	}
	return a
}

func helperMain(args []string) error {
	if len(args) < 3 {
		return errors.New("usage: ROOT [--bind=SRC:DST]... -- COMMAND...")
	}
	root := args[0]
	var binds []string
	noMounts := false
	i := 1
	for ; i < len(args) && args[i] != "--"; i++ {
		if args[i] == noMountsArg {
			noMounts = true
			continue
		}
		b, ok := strings.CutPrefix(args[i], "--bind=")
		if !ok {
			return fmt.Errorf("unexpected argument %q", args[i])
		}
		binds = append(binds, b)
	}
	argv := args[i+1:]
	if i == len(args) || len(argv) == 0 {
		return errors.New("no command")
	}
	if noMounts {
		if len(binds) > 0 {
			return errors.New("binds need mounts")
		}
		return enter(root, argv)
	}
	// Mounts made here must stay in this namespace and vanish with it.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		// "/" is not a mount point when nroot itself runs in a chroot;
		// then it goes on only if no mount it can see propagates.
		if !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("making mounts private: %w", err)
		}
		if shared, err := sharedMounts(); err != nil || shared != "" {
			return fmt.Errorf("/ is not a mount point (nroot runs in a chroot) and mount %s propagates to other namespaces: run nroot in a private mount namespace of its own (%v)", shared, err)
		}
	}
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", root, err)
	}
	mounts := []struct {
		src, dst, fstype string
		flags            uintptr
	}{
		{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"/sys", "sys", "", unix.MS_BIND | unix.MS_REC},
		{"/dev", "dev", "", unix.MS_BIND | unix.MS_REC},
	}
	for _, b := range binds {
		src, dst, ok := strings.Cut(b, ":")
		if !ok || src == "" || dst == "" {
			return fmt.Errorf("bind %q: give SRC:DST", b)
		}
		mounts = append(mounts, struct {
			src, dst, fstype string
			flags            uintptr
		}{src, strings.TrimLeft(dst, "/"), "", unix.MS_BIND | unix.MS_REC})
	}
	for _, m := range mounts {
		// The mount point is resolved inside the image, never through
		// its symlinks onto the host, and must be a directory.
		fd, err := unix.Openat2(rootFd, m.dst, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		if err != nil {
			return fmt.Errorf("mount point /%s in the image: %w", m.dst, err)
		}
		err = unix.Mount(m.src, "/proc/self/fd/"+strconv.Itoa(fd), m.fstype, m.flags, "")
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("mounting %s on /%s: %w", m.src, m.dst, err)
		}
	}
	if err := unix.Fchdir(rootFd); err != nil {
		return err
	}
	return enter(".", argv)
}

// noMountsArg tells the helper to mount nothing: it runs in nroot's own
// mount namespace, which lacks the right to make one.
const noMountsArg = "--no-mounts"

// enter chroots into root and executes argv there.
func enter(root string, argv []string) error {
	if err := unix.Chroot(root); err != nil {
		return fmt.Errorf("chroot %s: %w", root, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("%s inside the image: %w", argv[0], err)
	}
	return syscall.Exec(path, argv, os.Environ())
}

// sharedMounts names the first mount this process sees whose mounts
// propagate to a peer group ("shared:" in mountinfo), or "".
func sharedMounts() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - ...
		for i := 6; i < len(f) && f[i] != "-"; i++ {
			if strings.HasPrefix(f[i], "shared:") {
				return f[4], nil
			}
		}
	}
	return "", nil
}
