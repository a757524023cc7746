package nfsclient

import (
	"fmt"
	"strings"
	"testing"

	"nroot/format/report"
)

func TestParseIDs(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]uint32
	}{
		{"passwd", "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\n", map[string]uint32{"root": 0, "daemon": 1}},
		{"group", "shadow:x:42:\nstaff:x:50:alice,bob\n", map[string]uint32{"shadow": 42, "staff": 50}},
		{"the first entry wins", "a:x:1:\na:x:2:\n", map[string]uint32{"a": 1}},
		{"NIS lines, comments, junk and ids out of range are passed over", "+:::\n-bad:x:3:\n#c:x:4:\nnoid:x:y:\nbig:x:4294967296:\n:x:5:\nshort:x\n", map[string]uint32{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseIDs([]byte(tt.in))
			if len(got) != len(tt.want) {
				t.Fatalf("%v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

// TestMapOwners: stand-ins become the database's ids, with or without a
// domain; numbers the server sent stay; an unknown name is reported with
// the path and the field, and no id is made up for it.
func TestMapOwners(t *testing.T) {
	var n ownerNames
	file := func(uid, gid uint32) *Node {
		return &Node{File: report.File{UID: int(uid), GID: int(gid)}}
	}
	tree := Tree{
		"etc/shadow": file(n.standIn("root@localdomain", false), n.standIn("shadow@localdomain", true)),
		"var/mail":   file(8, n.standIn("mail", true)),
		"usr/x":      file(n.standIn("ghost@d", false), 0),
		"opt/y":      file(n.standIn("root", false), n.standIn("ghost@d", true)),
	}
	un := mapOwners(tree, &n, []byte("root:x:0:0::/:/bin/sh\n"), []byte("root:x:0:\nshadow:x:42:\nmail:x:8:\n"))
	if f := tree["etc/shadow"]; f.UID != 0 || f.GID != 42 {
		t.Errorf("etc/shadow %d:%d, want 0:42", f.UID, f.GID)
	}
	if f := tree["var/mail"]; f.UID != 8 || f.GID != 8 {
		t.Errorf("var/mail %d:%d, want 8:8", f.UID, f.GID)
	}
	want := []Unmapped{{"opt/y", "group", "ghost@d"}, {"usr/x", "owner", "ghost@d"}}
	if len(un) != len(want) || un[0] != want[0] || un[1] != want[1] {
		t.Fatalf("unmapped %+v, want %+v", un, want)
	}
	if tree["usr/x"].UID < standInBase {
		t.Errorf("an unknown name was given id %d", tree["usr/x"].UID)
	}
}

// TestOwnerNumbersInStandInRange: a server that sends a plain number
// equal to a stand-in id, or a real id in the stand-ins' range, gets that
// number back, never the id of a name another entry sent.
func TestOwnerNumbersInStandInRange(t *testing.T) {
	tests := []struct {
		name  string
		sent  []string // owners, in the order the server sent them
		want  []uint32
		unmap int
	}{
		{"a name, then the number of its stand-in", []string{"ghost@d", fmt.Sprint(standInBase)}, []uint32{0, standInBase}, 1},
		{"the number first, then a name", []string{fmt.Sprint(standInBase), "root@d"}, []uint32{standInBase, 0}, 0},
		{"nobody's number and (uid_t)-2", []string{"4294967294", "65534"}, []uint32{4294967294, 65534}, 0},
		{"a number with a domain", []string{"1000@d"}, []uint32{1000}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n ownerNames
			tree := Tree{}
			for i, s := range tt.sent {
				tree[string(rune('a'+i))] = &Node{File: report.File{UID: int(n.id(s, false))}}
			}
			un := mapOwners(tree, &n, []byte("root:x:0:0::/:/bin/sh\n"), nil)
			for i, w := range tt.want {
				got := tree[string(rune('a'+i))].UID
				if i == 0 && tt.unmap == 1 {
					continue // the unknown name keeps its stand-in
				}
				if uint32(got) != w {
					t.Errorf("%q mapped to %d, want %d", tt.sent[i], got, w)
				}
			}
			if len(un) != tt.unmap {
				t.Errorf("unmapped %+v, want %d", un, tt.unmap)
			}
		})
	}
}

func FuzzParseIDs(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\nshadow:x:42:\n"))
	f.Add([]byte("a:b:99999999999:\n::::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids := parseIDs(b)
		if len(ids) > strings.Count(string(b), "\n")+1 {
			t.Fatalf("%d names from %d lines", len(ids), strings.Count(string(b), "\n")+1)
		}
		for name := range ids {
			if name == "" || strings.Contains(name, ":") || strings.Contains(name, "\n") {
				t.Fatalf("name %q", name)
			}
		}
	})
}
