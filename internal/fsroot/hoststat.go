package fsroot

import "time"

// HostStat is what nroot reads of a file outside any root (a tree to pack
// or to compare with an export), in Unix terms on every system: Mode
// holds the type bits (S_IFREG, S_IFDIR, ...) and the permission bits.
type HostStat struct {
	Mode                 uint32
	UID, GID             int
	Size                 int64
	NLink                int
	ModTime              time.Time
	Dev, Ino             uint64 // a hard link's identity, with NLink
	RDevMajor, RDevMinor uint32 // a device node's number
}

// The type bits of HostStat.Mode, as st_mode has them.
const (
	ModeType   = 0o170000
	ModeSocket = 0o140000
	ModeLink   = 0o120000
	ModeReg    = 0o100000
	ModeBlock  = 0o060000
	ModeDir    = 0o040000
	ModeChar   = 0o020000
	ModeFIFO   = 0o010000
)
