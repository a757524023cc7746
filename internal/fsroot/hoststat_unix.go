//go:build unix

package fsroot

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// HostLstat stats a host path without following its last component.
func HostLstat(p string) (HostStat, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return HostStat{}, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	rdev := uint64(st.Rdev)
	return HostStat{
		Mode: uint32(st.Mode), UID: int(st.Uid), GID: int(st.Gid), Size: st.Size, NLink: int(st.Nlink),
		ModTime: time.Unix(st.Mtim.Unix()), Dev: uint64(st.Dev), Ino: uint64(st.Ino),
		RDevMajor: unix.Major(rdev), RDevMinor: unix.Minor(rdev),
	}, nil
}

// HostUnixMeta: a HostStat's mode bits and owner are the file's own.
const HostUnixMeta = true
