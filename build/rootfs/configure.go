package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"pault.ag/go/debian/dependency"

	"nroot/build/deb"
	"nroot/build/nspawn"
	"nroot/format/control"
	"nroot/internal/fsroot"
)

// firstPreinsts run before all others, as debootstrap runs them: users and
// groups, the base layout, and /bin/sh.
var firstPreinsts = []string{"base-passwd", "base-files", "dash"}

// configureScript is run inside the container. For each stage, as
// mmdebstrap installs the essential set before the rest, it runs the
// stage's preinsts with "install", then configures the stage's packages
// in dependency order. Every file is unpacked before the first script
// runs, so the triggers dpkg would activate while unpacking have nothing
// left to do that the postinsts do not. Markers on stdout name the step
// that failed.
func configureScript(stages [][]string, archOf map[string]string, all, skipInstalled bool) string {
	var b strings.Builder
	b.WriteString(`set -u
export DPKG_RUNNING_VERSION="$(dpkg-query --showformat='${Version}' --show dpkg)"
preinst() { # package, architecture
	script=/var/lib/dpkg/info/$1.preinst
	[ -e "$script" ] || return 0
	echo "[configure] preinst $1"
	if ! DPKG_MAINTSCRIPT_PACKAGE="${1%%:*}" DPKG_MAINTSCRIPT_NAME=preinst DPKG_MAINTSCRIPT_ARCH="$2" "$script" install; then
		echo "[configure] failed: preinst of $1"
		exit 100
	fi
}
configure() {
	echo "[configure] dpkg --configure"
	[ $# -gt 0 ] || return 0
	if ! dpkg --configure "$@"; then
		echo "[configure] failed: dpkg --configure"
		exit 101
	fi
}
`)
	if skipInstalled {
		// After the essential hooks: a package a hook's apt or dpkg has
		// configured already (mmdebstrap's merged-usr hook directory
		// installs with apt, which configures whatever is unpacked) is
		// neither preinstalled nor configured again.
		b.WriteString(`installed=" $(dpkg-query --show --showformat='${db:Status-Status} ${binary:Package}\n' | sed -n 's/^installed //p' | tr '\n' ' ')"
pending() { case "$installed" in *" $1 "*) return 1;; esac; }
`)
	}
	for _, st := range stages {
		if len(st) == 0 {
			continue
		}
		for _, pkg := range st {
			arch := archOf[pkg]
			if !safeToken.MatchString(arch) {
				arch = "''"
			}
			if skipInstalled {
				fmt.Fprintf(&b, "pending %s && ", pkg)
			}
			fmt.Fprintf(&b, "preinst %s %s\n", pkg, arch)
		}
		if skipInstalled {
			b.WriteString("set --\n")
			for _, pkg := range st {
				fmt.Fprintf(&b, "pending %s && set -- \"$@\" %s\n", pkg, pkg)
			}
			b.WriteString("configure \"$@\"\n")
		} else {
			fmt.Fprintf(&b, "configure %s\n", strings.Join(st, " "))
		}
	}
	if all {
		b.WriteString("configure -a\n")
	}
	return b.String()
}

const policyRCD = "#!/bin/sh\n# Written by nroot for the configuration stage: start no services.\nexit 101\n"

const fakeStartStopDaemon = "#!/bin/sh\necho 'Warning: fake start-stop-daemon called, doing nothing' >&2\nexit 0\n"

const fakeIsChroot = "#!/bin/sh\n# Written by nroot for the configuration stage, as in a chroot.\nexit 0\n"

// ConfigureError says which package's maintainer script failed, with its
// output.
type ConfigureError struct {
	Package string
	Step    string
	Output  string
}

func (e *ConfigureError) Error() string {
	who := e.Step
	if e.Package != "" {
		who = fmt.Sprintf("%s of package %s", e.Step, e.Package)
	}
	return fmt.Sprintf("configure: %s failed; output:\n%s", who, e.Output)
}

var dpkgErrorRE = regexp.MustCompile(`error processing package ([^ ]+) \(--configure\)`)

// Configure runs the maintainer scripts of unpacked packages inside the
// root with systemd-nspawn, with services forbidden, then removes the
// shims it put in place. It is the only step that runs code from the
// image.
func Configure(ctx context.Context, target string, pkgs []*Unpacked, stageOf map[string]string, log io.Writer) error {
	return configure(ctx, target, pkgs, stageOf, log, nil)
}

// configure is Configure, calling afterEssential (when set) once the
// essential stage is configured and before the rest is, as mmdebstrap
// runs its essential hooks.
func configure(ctx context.Context, target string, pkgs []*Unpacked, stageOf map[string]string, log io.Writer, afterEssential func() error) error {
	runner, err := nspawn.New(target)
	if err != nil {
		return err
	}
	root, err := fsroot.Open(target)
	if err != nil {
		return err
	}
	defer root.Close()
	undo, err := installShims(root)
	defer undo()
	if err != nil {
		return err
	}
	// dpkg syncs its database for every package state it records;
	// the caller syncs the tree once instead (syncTree).
	runner.NoSync = true
	var out bytes.Buffer
	runner.Stdout = io.Writer(&out)
	if log != nil {
		runner.Stdout = io.MultiWriter(&out, log)
	}
	runner.Stderr = runner.Stdout
	archOf := map[string]string{}
	for _, p := range pkgs {
		archOf[p.infoName()] = p.ctl.Fields.Get("Architecture")
	}
	run := func(stages [][]string, all, skipInstalled bool) error {
		err := runner.Run(ctx, "/bin/sh", "-c", configureScript(stages, archOf, all, skipInstalled))
		var ee *nspawn.ExitError
		if errors.As(err, &ee) {
			return explainFailure(out.String(), ee)
		}
		return err
	}
	stages := configureStages(pkgs, stageOf)
	if afterEssential == nil {
		return run(stages, true, false)
	}
	if len(stages) > 1 {
		if err := run(stages[:1], false, false); err != nil {
			return err
		}
		if err := afterEssential(); err != nil {
			return err
		}
		return run(stages[1:], true, true)
	}
	if err := run(stages, true, false); err != nil {
		return err
	}
	return afterEssential()
}

// failedPreinst is the script's marker for a preinst that failed.
const failedPreinst = "[configure] failed: preinst of "

func explainFailure(out string, ee *nspawn.ExitError) error {
	ce := &ConfigureError{Step: "configuration", Output: tailLines(out, 60)}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, failedPreinst) {
			ce.Step, ce.Package = "preinst", strings.TrimPrefix(line, failedPreinst)
		}
		if m := dpkgErrorRE.FindStringSubmatch(line); m != nil && ce.Package == "" {
			ce.Step, ce.Package = "dpkg --configure (postinst)", m[1]
		}
	}
	if ce.Output == "" {
		ce.Output = ee.Output
	}
	return ce
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// installShims forbids service starts for the duration, as mmdebstrap
// and debootstrap do, and returns the function that removes the shims.
func installShims(root *fsroot.Root) (func(), error) {
	var undo []func()
	done := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if err := root.MkdirAll("usr/sbin", 0o755); err != nil {
		return done, err
	}
	if _, err := root.Lstat("usr/sbin/policy-rc.d"); err == nil {
		return done, fmt.Errorf("usr/sbin/policy-rc.d already exists in the image")
	}
	if err := root.WriteFile("usr/sbin/policy-rc.d", strings.NewReader(policyRCD), int64(len(policyRCD)), fsroot.Meta{Mode: 0o755}); err != nil {
		return done, err
	}
	undo = append(undo, func() { root.Remove("usr/sbin/policy-rc.d") })
	// Programs replaced for the duration: start-stop-daemon starts
	// nothing, and ischroot says "chroot" as it does under mmdebstrap
	// and debootstrap (inside a container it says no, and libc6's
	// postinst then tries to re-exec init and sleeps a second).
	for _, shim := range []struct{ path, script string }{
		{"usr/sbin/start-stop-daemon", fakeStartStopDaemon},
		{"usr/bin/ischroot", fakeIsChroot},
	} {
		if _, err := root.Lstat(shim.path); err != nil {
			continue
		}
		// Through the root: after the container's code has run, these
		// paths are whatever the image made of them.
		path := shim.path
		if err := root.Rename(path, path+".REAL"); err != nil {
			return done, err
		}
		undo = append(undo, func() { root.Rename(path+".REAL", path) })
		if err := root.WriteFile(shim.path, strings.NewReader(shim.script), int64(len(shim.script)), fsroot.Meta{Mode: 0o755}); err != nil {
			return done, err
		}
	}
	return done, nil
}

var safeToken = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+:~/_-]*$`)

// configureStages splits the packages by the stage that selected them, in
// stage order, each in preinstOrder.
func configureStages(pkgs []*Unpacked, stageOf map[string]string) [][]string {
	var names []string
	groups := map[string][]*Unpacked{}
	for _, p := range pkgs {
		st := stageOf[p.name()]
		if _, ok := groups[st]; !ok {
			names = append(names, st)
		}
		groups[st] = append(groups[st], p)
	}
	// The essential stage first; others in the order first seen.
	sort.SliceStable(names, func(i, j int) bool { return names[i] == "essential" && names[j] != "essential" })
	var out [][]string
	for _, n := range names {
		out = append(out, preinstOrder(groups[n]))
	}
	return out
}

// preinstOrder is the order preinsts run in: base-passwd, base-files and
// dash first, then the rest with each package after what it
// Pre-Depends and Depends on, ties broken by name.
func preinstOrder(pkgs []*Unpacked) []string {
	byName := map[string]*Unpacked{}
	provides := map[string][]string{}
	for _, p := range pkgs {
		byName[p.name()] = p
		if d, err := dependency.Parse(p.ctl.Fields.Get("Provides")); err == nil {
			for _, rel := range d.Relations {
				for _, poss := range rel.Possibilities {
					provides[poss.Name] = append(provides[poss.Name], p.name())
				}
			}
		}
	}
	deps := map[string][]string{}
	for _, p := range pkgs {
		for _, field := range []string{"Pre-Depends", "Depends"} {
			d, err := dependency.Parse(p.ctl.Fields.Get(field))
			if err != nil {
				continue
			}
			for _, rel := range d.Relations {
				for _, poss := range rel.Possibilities {
					targets := provides[poss.Name]
					if byName[poss.Name] != nil {
						targets = append(targets, poss.Name)
					}
					for _, t := range targets {
						if t != p.name() {
							deps[p.name()] = append(deps[p.name()], t)
						}
					}
				}
			}
		}
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string)
	visit = func(n string) {
		if state[n] != 0 {
			return // done, or a cycle: broken here
		}
		state[n] = 1
		ds := append([]string(nil), deps[n]...)
		sort.Strings(ds)
		for _, d := range ds {
			visit(d)
		}
		state[n] = 2
		if safeToken.MatchString(byName[n].infoName()) {
			order = append(order, byName[n].infoName())
		}
	}
	for _, n := range firstPreinsts {
		if byName[n] != nil {
			state[n] = 2
			order = append(order, byName[n].infoName())
		}
	}
	var names []string
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		visit(n)
	}
	return order
}

// ConfigureDir finishes a root that Bootstrap unpacked but could not
// configure (a foreign architecture): it reads the unpacked packages from
// the dpkg database and runs their maintainer scripts.
func ConfigureDir(ctx context.Context, target string, log io.Writer) error {
	img, err := fsroot.Open(target)
	if err != nil {
		return fmt.Errorf("configure %s: %w", target, err)
	}
	defer img.Close()
	f, err := img.Open(admindir + "/status")
	if err != nil {
		return fmt.Errorf("configure %s: not an unpacked root (no dpkg status): %w", target, err)
	}
	defer f.Close()
	paras, err := control.ReadAll(io.LimitReader(f, maxDpkgStatus))
	if err != nil {
		return fmt.Errorf("configure %s: dpkg status: %w", target, err)
	}
	var pkgs []*Unpacked
	for _, p := range paras {
		if !strings.HasSuffix(p.Get("Status"), " unpacked") {
			continue
		}
		ip := &Unpacked{ctl: &deb.Control{Fields: p, Files: map[string][]byte{}}, multi: p.Get("Multi-Arch") == "same"}
		if b, err := img.ReadFile(admindir+"/info/"+ip.infoName()+".triggers", maxControlFile); err == nil {
			ip.ctl.Files["triggers"] = b
		}
		pkgs = append(pkgs, ip)
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("configure %s: no unpacked packages to configure", target)
	}
	if err := Configure(ctx, target, pkgs, nil, log); err != nil {
		return err
	}
	if err := cleanup(img, nil); err != nil {
		return err
	}
	return img.Sync()
}

// Caps on the dpkg database files read back from an image.
const (
	maxDpkgStatus  = 256 << 20
	maxControlFile = 16 << 20
)
