// Package export renders how an NFS server exports a node image: the
// /etc/exports line for the kernel's server and the nfs-ganesha EXPORT
// block. nroot export prints them, and the tests and make e2e serve images
// with the very same blocks.
package export

import (
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strings"
)

// Servable says whether p can go into every line nroot writes of an
// export unquoted: /etc/exports, ganesha's blocks, kernel command lines
// and iPXE scripts. It is of letters, digits and / . _ - + only.
func Servable(p string) bool {
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+", c)) {
			return false
		}
	}
	return true
}

// GenerationsDir is the directory of an nroot image that NFS exports.
const GenerationsDir = "generations"

// Generations is what NFS serves of the nroot image at dir to nodes that
// mount EXPORT/generations/N/root: the generations directory alone,
// read-only, without root squash (root on the node reads /etc/shadow).
// Nothing else of the image is exported: its nodes/ holds each node's
// private keys, which only nginx serves, each to its node's address.
func Generations(dir, exportPath string) Export {
	gens := filepath.Join(dir, GenerationsDir)
	return Export{ID: ID(gens), Path: gens, Pseudo: strings.TrimSuffix(exportPath, "/") + "/" + GenerationsDir}
}

// Export is one exported directory.
type Export struct {
	ID     int    // nfs-ganesha Export_Id and knfsd fsid; 0 derives one from Path
	Path   string // directory on the server
	Pseudo string // NFSv4 path nodes mount; default Path
	// What nodes get by default: read-only (each puts an overlay over
	// the root) and no root squash (root must read /etc/shadow).
	ReadWrite  bool
	RootSquash bool
	// PrivilegedPort refuses clients whose source port is 1024 or above
	// (knfsd's "secure" default); nroot's exports are "insecure".
	PrivilegedPort bool
	// NoAttrCache has ganesha serve changes made on the server at once
	// (for tests that change trees under it).
	NoAttrCache bool
	// V4Only serves NFSv4 alone (Protocols = 4).
	V4Only bool
}

// ID derives a stable export ID from a path, for servers that need one.
func ID(path string) int { return int(crc32.ChecksumIEEE([]byte(path))%65535 + 1) }

func (e Export) id() int {
	if e.ID != 0 {
		return e.ID
	}
	return ID(e.Path)
}

func (e Export) pseudo() string {
	if e.Pseudo != "" {
		return e.Pseudo
	}
	return e.Path
}

// ExportsLine is the /etc/exports line for the kernel's NFS server.
func (e Export) ExportsLine() string {
	opts := []string{map[bool]string{true: "rw", false: "ro"}[e.ReadWrite], "no_subtree_check",
		map[bool]string{true: "root_squash", false: "no_root_squash"}[e.RootSquash],
		map[bool]string{true: "secure", false: "insecure"}[e.PrivilegedPort], fmt.Sprintf("fsid=%d", e.id())}
	return fmt.Sprintf("%s *(%s)", e.Path, strings.Join(opts, ","))
}

// GaneshaNFSV4 is the NFSV4 block nroot's exports need, with the server's
// own settings (lines) added. Owners go as numbers, so nodes map them
// without the idmapper upcall (which can deadlock against systemd at
// boot); NFSv4.2's READ_PLUS from nfs-ganesha 4 gives Linux 6.12 clients
// EIO (trixie could not execute /sbin/init), and 4.1 is enough.
func GaneshaNFSV4(lines ...string) string {
	return ganeshaNFSV4(true, lines)
}

// GaneshaNFSV4NamedOwners is GaneshaNFSV4 with nfs-ganesha's default
// owners (names, user@domain, from the server's user database): the
// server nroot did not configure, which nroot check must read right.
func GaneshaNFSV4NamedOwners(lines ...string) string {
	return ganeshaNFSV4(false, lines)
}

func ganeshaNFSV4(numericOwners bool, lines []string) string {
	var b strings.Builder
	b.WriteString("NFSV4 {\n")
	if numericOwners {
		b.WriteString("    # Owners as numbers: nodes map them without the idmapper upcall.\n    Only_Numeric_Owners = true;\n")
	}
	b.WriteString("    # nfs-ganesha 4's NFSv4.2 READ_PLUS gives Linux 6.12 clients EIO.\n    Minor_Versions = 0, 1;\n")
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// Ganesha is the nfs-ganesha EXPORT block.
func (e Export) Ganesha() string {
	access, squash := "RO", "No_Root_Squash"
	if e.ReadWrite {
		access = "RW"
	}
	if e.RootSquash {
		squash = "Root_Squash"
	}
	var extra string
	protocols := "3, 4"
	if e.V4Only {
		protocols = "4"
	}
	if e.NoAttrCache {
		extra = "    Attr_Expiration_Time = 0;\n"
	}
	return fmt.Sprintf(`EXPORT {
    Export_Id = %d;
    Path = %s;
    Pseudo = %s;
    Access_Type = %s;
    Squash = %s;
    SecType = sys;
    Protocols = %s;
    Transports = TCP;
    PrivilegedPort = %v;
%s    Delegations = None;
    FSAL { Name = VFS; }
}
`, e.id(), e.Path, e.pseudo(), access, squash, protocols, e.PrivilegedPort, extra)
}
