package node

import (
	"fmt"
	"regexp"
	"strings"

	"nroot/internal/fsroot"
)

// dracut asks ldd for the libraries of every program and library it puts
// in the initramfs, one file at a time (dracut-install, and dracut's own
// find_binary). glibc's ldd is a bash script that starts the loader once
// to verify the file and again, through a pipe, to list it: about 24 ms a
// file where the loader alone takes 3, and on a bookworm node dracut asks
// for some 160 files, 3 to 4 s of its 25. dracut takes the program from
// $DRACUT_LDD: while it runs, the node stage points it at lddHelper,
// which gives ldd's answer from the loader directly for what it is asked
// nearly always (a dynamic ELF file its first loader verifies) and hands
// everything else to ldd itself. The initramfs is the same, file for
// file; the helper is removed afterwards.
const lddHelper = "var/tmp/.nroot-dracut-ldd"

// maxLddScript bounds the image's /usr/bin/ldd (about 5 KB).
const maxLddScript = 1 << 20

// rtldPath is one dynamic loader in ldd's RTLDLIST: an absolute path of
// plain characters, so that it can stand unquoted in the helper.
var rtldPath = regexp.MustCompile(`^/[A-Za-z0-9._+/-]{1,200}$`)

// maxRtlds bounds RTLDLIST (glibc's have one to three).
const maxRtlds = 8

// rtldList reads the dynamic loaders glibc's ldd script tries, in its
// order, from its RTLDLIST= line; nil when the script has none or one
// that is not plain absolute paths, and then dracut keeps ldd.
func rtldList(ldd []byte) []string {
	for _, line := range strings.Split(string(ldd), "\n") {
		v, ok := strings.CutPrefix(line, "RTLDLIST=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		f := strings.Fields(v)
		if len(f) == 0 || len(f) > maxRtlds {
			return nil
		}
		for _, p := range f {
			if !rtldPath.MatchString(p) || strings.Contains(p, "..") {
				return nil
			}
		}
		return f
	}
	return nil
}

// lddHelperScript is the helper for the loaders rtlds. ldd tries them in
// order: the first whose --verify says 0 (a dynamic object it loads)
// lists the file, as ldd would with LD_TRACE_LOADED_OBJECTS; 1 (not
// its kind) moves on to the next. Anything else (a 2, a file that is no
// dynamic object, a relative name, more than one argument) is ldd's.
func lddHelperScript(rtlds []string) string {
	return fmt.Sprintf(`#!/bin/sh
# Written by nroot node for dracut ($DRACUT_LDD) while it builds the
# initramfs, and removed afterwards: ldd's answer for a dynamic object from
# its loader, without ldd's bash and pipe; any other case is ldd's.
case "$#:$1" in
1:/*)
	if [ -f "$1" ] && [ -r "$1" ]; then
		for rtld in %s; do
			[ -x "$rtld" ] || continue
			"$rtld" --verify "$1" >/dev/null 2>&1
			case $? in
			0) exec "$rtld" --list "$1" ;;
			1) ;;
			*) break ;;
			esac
		done
	fi
	;;
esac
exec ldd "$@"
`, strings.Join(rtlds, " "))
}

// installLddHelper writes lddHelper into img for the image's ldd and
// returns the environment that has dracut use it, and a function that
// removes it. With no ldd script to read the loaders from it does
// nothing, and dracut keeps ldd.
func installLddHelper(img *fsroot.Root) (env []string, remove func(), err error) {
	var script []byte
	for _, p := range []string{"usr/bin/ldd", "bin/ldd"} {
		if script, err = img.ReadFile(p, maxLddScript); err == nil {
			break
		}
	}
	rtlds := rtldList(script)
	if rtlds == nil {
		return nil, func() {}, nil
	}
	if err := writeFile(img, lddHelper, lddHelperScript(rtlds), 0o755); err != nil {
		return nil, nil, fmt.Errorf("node: %w", err)
	}
	return []string{"DRACUT_LDD=/" + lddHelper}, func() { img.Remove(lddHelper) }, nil
}
