package node

import (
	"encoding/json"
	"fmt"
	"strings"

	"nroot/format/report"
	"nroot/internal/fsroot"
)

// Check is one named result, as every nroot check is.
type Check = report.Check

// Checks reports whether root is a bootable, shareable node image.
func Checks(root string) []Check {
	r, err := fsroot.Open(root)
	if err != nil {
		return []Check{report.Result("root", false, fmt.Sprintf("%v; give the directory of a node image", err))}
	}
	defer r.Close()
	if !r.IsRegular("var/lib/dpkg/status") {
		// Nothing else means anything of a directory that is no image.
		return []Check{report.Result("root", false, fmt.Sprintf("%s is not a Debian or Ubuntu root filesystem (no var/lib/dpkg/status); make one with nroot bootstrap and nroot node", root))}
	}
	return checks(r)
}

// checks runs every check on r. The initramfs images of the kernels in
// verified passed verifyInitrd moments ago in this process (the node
// stage verifies each one it builds) and are not read again.
func checks(r *fsroot.Root, verified ...string) []Check {
	var out []Check
	add := func(name string, pass bool, format string, a ...any) {
		out = append(out, report.Result(name, pass, fmt.Sprintf(format, a...)))
	}
	kvers, err := kernels(r)
	if err != nil {
		add("kernel", false, "%v", err)
	} else {
		add("kernel", true, "kernels: %s", strings.Join(kvers, ", "))
		for _, k := range kvers {
			if !contains(verified, k) {
				if err := verifyInitrd(r, k); err != nil {
					add("initrd", false, "%v; run nroot node again", err)
					continue
				}
			}
			add("initrd", true, "/boot/initrd.img-%s passes verify --nfs --overlay", k)
		}
	}
	if b, err := r.ReadFile(cmdlineFile, maxSmallFile); err != nil || !strings.Contains(string(b), "root=nfs") {
		add("cmdline", false, "no %s with an NFS root; run nroot node", cmdlineFile)
	} else {
		add("cmdline", true, "%s", strings.TrimSpace(string(b)))
	}
	b, err := r.ReadFile("etc/machine-id", 64)
	add("machine-id", err == nil && blankMachineID(string(b)), "/etc/machine-id is %q: each node must generate its own (empty or \"uninitialized\")", printable(b, err))
	t, err := r.Readlink("var/lib/dbus/machine-id")
	add("dbus-machine-id", err == nil && (t == "/etc/machine-id" || t == "../../../etc/machine-id"), "/var/lib/dbus/machine-id must be a symlink to /etc/machine-id (is %q)", t)
	keys := sshHostFiles(r, "ssh_host_*_key")
	add("ssh-host-keys", len(keys) == 0, "%d SSH host keys baked into the image; every node would share them", len(keys))
	if sshInstalled(r) {
		ok := exists(r, "etc/systemd/system/multi-user.target.wants/nroot-ssh-hostkeys.service")
		add("ssh-keygen-at-boot", ok, "openssh-server is installed; a unit must generate host keys at boot")
	}
	var st State
	if b, err := r.ReadFile(stateFile, maxSmallFile); err == nil {
		_ = json.Unmarshal(b, &st)
	}
	if _, err := r.Lstat("etc/hostname"); err == nil && !st.Hostname {
		hn, err := r.ReadFile("etc/hostname", 256)
		add("hostname", false, "/etc/hostname is %q: every node would get that name; remove it (or pass --hostname to nroot node on purpose)", printable(hn, err))
	} else {
		add("hostname", true, "no fixed hostname (or one asked for)")
	}
	fstab, _ := r.ReadFile("etc/fstab", maxSmallFile)
	rootEntry, tmp, vartmp := "", false, false
	for _, line := range strings.Split(string(fstab), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[1] {
		case "/":
			rootEntry = line
		case "/tmp":
			tmp = f[2] == "tmpfs"
		case "/var/tmp":
			vartmp = f[2] == "tmpfs"
		}
	}
	add("fstab-root", rootEntry == "", "/etc/fstab must not remount the root: %q", rootEntry)
	add("tmp-writable", tmp && vartmp, "/tmp tmpfs: %v, /var/tmp tmpfs: %v (needed when the root is read-only)", tmp, vartmp)
	masked := true
	for _, u := range networkdUnits {
		if t, err := r.Readlink("etc/systemd/system/" + u); err != nil || t != "/dev/null" {
			masked = false
		}
	}
	var unmasked []string
	for _, u := range presentCloudUnits(r) {
		if t, err := r.Readlink("etc/systemd/system/" + u); err != nil || t != "/dev/null" {
			unmasked = append(unmasked, u)
		}
	}
	if len(unmasked) == 0 {
		add("cloud-units-masked", true, "no unit that needs a cloud datasource runs")
	} else {
		add("cloud-units-masked", false, "units that need a cloud datasource and fail on a node: %s; run nroot node again", strings.Join(unmasked, ", "))
	}
	if unwanted := installedOf(r, unwantedPackages); len(unwanted) == 0 {
		add("no-snapd-cloud-init", true, "neither snapd nor cloud-init is installed")
	} else {
		add("no-snapd-cloud-init", false, "installed: %s; a diskless node must not run them (nroot node removes them)", strings.Join(unwanted, ", "))
	}
	add("networkd-masked", masked || !exists(r, "usr/lib/systemd/systemd-networkd", "lib/systemd/systemd-networkd"), "systemd-networkd must not reconfigure the NFS root's interface (masked: %v)", masked)
	return out
}

// printable shows what an image file holds in a check's reason: its text,
// trimmed and quoted by the caller, or why it could not be read. What
// the image holds is never printed raw to the terminal.
func printable(b []byte, err error) string {
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(string(b)))
}
