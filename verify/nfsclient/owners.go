package nfsclient

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// An NFSv4 server sends owners as numbers (nfs-ganesha's
// Only_Numeric_Owners, the kernel's nfs4_disable_idmapping) or, by
// default, as names, "user@domain", from the server's own user database.
// A node maps those names through its root's /etc/passwd and /etc/group,
// which are the export's: so does the check, once the walk has read them.

// standInBase is where the stand-ins for names begin: ids this high are
// not given to users (Linux's (uid_t)-1 and the overflow ids sit just
// above or below, and Debian gives at most 60000 plus the nobody range).
const standInBase = math.MaxUint32 - 1<<20

// maxOwnerNames bounds the distinct names a server may send.
const maxOwnerNames = 1 << 16

// ownerNames keeps the owner and group names a server sent as strings,
// each behind a stand-in id.
type ownerNames struct {
	mu    sync.Mutex
	ids   map[ownerName]uint32
	names []ownerName
}

type ownerName struct {
	name  string
	group bool
}

// standIn is the id that stands for name until MapOwners.
func (o *ownerNames) standIn(name string, group bool) uint32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := ownerName{name, group}
	if id, ok := o.ids[k]; ok {
		return id
	}
	if len(o.names) >= maxOwnerNames {
		return standInBase + maxOwnerNames // one more: never mapped
	}
	if o.ids == nil {
		o.ids = map[ownerName]uint32{}
	}
	id := standInBase + uint32(len(o.names))
	o.ids[k] = id
	o.names = append(o.names, k)
	return id
}

// id is the id for an owner string as the server sent it: a number
// below standInBase is itself; a name (user@domain), which only the
// export's own /etc/passwd and /etc/group can turn into the number a
// node sees, gets a stand-in until mapOwners. So does a number in the
// stand-ins' range, which mapOwners gives back as itself: every id at
// or above standInBase in a tree is then a stand-in, never a number the
// server sent that happens to equal one.
func (o *ownerNames) id(s string, group bool) uint32 {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && n < standInBase {
		return uint32(n)
	}
	return o.standIn(s, group)
}

func (o *ownerNames) lookup(id uint32) (ownerName, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if id < standInBase || int(id-standInBase) >= len(o.names) {
		return ownerName{}, false
	}
	return o.names[id-standInBase], true
}

// parseIDs reads /etc/passwd or /etc/group lines, NAME:x:ID:..., into
// names to ids; a line that is not such is passed over, as libc does.
// At most maxLines are read.
func parseIDs(b []byte) map[string]uint32 {
	const maxLines = 1 << 16
	out := map[string]uint32{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 0; sc.Scan() && n < maxLines; n++ {
		f := strings.SplitN(sc.Text(), ":", 4)
		if len(f) < 3 || f[0] == "" || strings.HasPrefix(f[0], "+") || strings.HasPrefix(f[0], "-") || strings.HasPrefix(f[0], "#") {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := out[f[0]]; !dup { // the first entry wins, as getpwnam's
			out[f[0]] = uint32(id)
		}
	}
	return out
}

// Unmapped is an entry whose owner or group the server sent as a name
// that the export's user database does not have.
type Unmapped struct {
	Path  string `json:"path"`
	Field string `json:"field"` // owner or group
	Name  string `json:"name"`  // as the server sent it
}

// mapOwners replaces, in t, the stand-ins for names by the ids that
// passwd and group give them ("name@domain" is looked up as "name"; root
// is 0 when the files lack it). Those they do not give are returned and
// left as the stand-in: no id is made up for them.
func mapOwners(t Tree, names *ownerNames, passwd, group []byte) []Unmapped {
	if names == nil || len(names.names) == 0 {
		return nil
	}
	users, groups := parseIDs(passwd), parseIDs(group)
	find := func(id uint32, isGroup bool) (uint32, string, bool) {
		k, ok := names.lookup(id)
		if !ok || k.group != isGroup {
			// Below standInBase, a number the server sent; at or above
			// it, past the names kept (maxOwnerNames): never mapped.
			return id, fmt.Sprintf("(one of more than %d distinct names)", maxOwnerNames), id < standInBase
		}
		name, _, _ := strings.Cut(k.name, "@")
		if n, err := strconv.ParseUint(name, 10, 32); err == nil {
			return uint32(n), k.name, true // a number, with or without a domain
		}
		db := users
		if isGroup {
			db = groups
		}
		if v, ok := db[name]; ok {
			return v, k.name, true
		}
		if name == "root" {
			return 0, k.name, true
		}
		return id, k.name, false
	}
	var out []Unmapped
	for p, n := range t {
		if n == nil {
			continue
		}
		if id, name, ok := find(uint32(n.UID), false); ok {
			n.UID = int(id)
		} else {
			out = append(out, Unmapped{Path: p, Field: "owner", Name: name})
		}
		if id, name, ok := find(uint32(n.GID), true); ok {
			n.GID = int(id)
		} else {
			out = append(out, Unmapped{Path: p, Field: "group", Name: name})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Field < out[j].Field
	})
	return out
}

// NamedOwners says the server sent owners as names (NFSv4 without
// numeric owners): they must be mapped (MapOwners) before a tree's
// numbers mean anything.
func (c *Conn) NamedOwners() bool { return c.v4 != nil && len(c.v4.names.names) > 0 }

// MapOwners gives the files of t that the server sent with owner names
// the numbers the user and group databases (passwd, group) give those
// names, and returns the names they lack.
func (c *Conn) MapOwners(t Tree, passwd, group []byte) []Unmapped {
	if c.v4 == nil {
		return nil
	}
	return mapOwners(t, &c.v4.names, passwd, group)
}
