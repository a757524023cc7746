package main

// linuxOnly are the commands that need Linux (commands_linux.go), and
// what each needs of it.
var linuxOnly = []struct{ name, needs string }{
	{"bootstrap", "user namespaces, openat2 roots and device nodes"},
	{"configure", "systemd-nspawn or chroot"},
	{"node", "systemd-nspawn and dracut"},
	{"export", "an image root read through openat2"},
	{"run", "systemd-nspawn"},
	{"shell", "systemd-nspawn"},
	{"boot", "systemd-nspawn"},
	{"identity", "ssh-keygen and an image root"},
	{"image", "openat2 roots and reflink copies"},
	{"pxe", "openat2 roots"},
	{"fsimage", "mksquashfs or mkfs.erofs over an image root"},
	{"status", "the image nroot pxe wrote for"},
}
