package fsroot

import (
	"io/fs"
	"os"
)

// HostLstat stats a host path without following its last component.
// Windows has no owners, device numbers or inode numbers in Unix terms:
// they are zero, and every file is its own (NLink 1).
func HostLstat(p string) (HostStat, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return HostStat{}, err
	}
	m := fi.Mode()
	s := HostStat{Mode: uint32(m.Perm()), NLink: 1, ModTime: fi.ModTime()}
	switch {
	case m&fs.ModeSymlink != 0:
		s.Mode |= ModeLink
	case m.IsDir():
		s.Mode |= ModeDir
	case m.IsRegular():
		s.Mode |= ModeReg
		s.Size = fi.Size()
	case m&fs.ModeNamedPipe != 0:
		s.Mode |= ModeFIFO
	case m&fs.ModeCharDevice != 0:
		s.Mode |= ModeChar
	case m&fs.ModeDevice != 0:
		s.Mode |= ModeBlock
	default:
		s.Mode |= ModeSocket
	}
	return s, nil
}

// HostUnixMeta: Windows keeps no Unix mode bits or owners; a HostStat's
// are made up (0o666 or 0o444, root), and comparisons leave them out.
const HostUnixMeta = false
