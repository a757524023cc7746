package inventory

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"nroot/build/fsimage"
)

func TestExpand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"node01", []string{"node01"}, false},
		{"node[1-3]", []string{"node1", "node2", "node3"}, false},
		{"node[001-003]", []string{"node001", "node002", "node003"}, false},
		{"node[8-10]", []string{"node8", "node9", "node10"}, false},
		{"node[1,4-5,9]", []string{"node1", "node4", "node5", "node9"}, false},
		{"rack[1-2]-ib", []string{"rack1-ib", "rack2-ib"}, false},
		{"10.0.0.[12-13]/24", []string{"10.0.0.12/24", "10.0.0.13/24"}, false},
		{"node[3-1]", nil, true},
		{"node[1-2", nil, true},
		{"node1-2]", nil, true},
		{"node[a-b]", nil, true},
		{"node[1-]", nil, true},
		{"n[1-2]x[1-2]", nil, true},
		{"node[0-4294967295]", nil, true},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("Expand(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name, file string
		want       []Node // nil: an error naming field
		field      string
	}{
		{"one node, defaults", "node01 mac=52:54:00:00:00:01\n",
			[]Node{{Name: "node01", MAC: "52:54:00:00:00:01", Address: "dhcp", Hostname: "node01", Line: 1}}, ""},
		{"a range expands its values in step, MACs in hex", "# cluster\n\nn[09-11] mac=52:54:00:00:01:[09-0b] address=10.0.0.[9-11] generation=2 args=\"quiet console=ttyS0\" # rack 1\n",
			[]Node{
				{Name: "n09", MAC: "52:54:00:00:01:09", Address: "10.0.0.9/24", Hostname: "n09", Gen: "2", Args: "quiet console=ttyS0", Line: 3},
				{Name: "n10", MAC: "52:54:00:00:01:0a", Address: "10.0.0.10/24", Hostname: "n10", Gen: "2", Args: "quiet console=ttyS0", Line: 3},
				{Name: "n11", MAC: "52:54:00:00:01:0b", Address: "10.0.0.11/24", Hostname: "n11", Gen: "2", Args: "quiet console=ttyS0", Line: 3},
			}, ""},
		{"an address keeps its prefix; a hostname can differ from the name", "a mac=52:54:00:00:00:0A address=fd00::5/48 hostname=web1\n",
			[]Node{{Name: "a", MAC: "52:54:00:00:00:0a", Address: "fd00::5/48", Hostname: "web1", Line: 1}}, ""},
		{"a node needs a MAC", "node01 address=dhcp\n", nil, "mac"},
		{"a bad MAC", "node01 mac=52:54:00:00:01\n", nil, "mac"},
		{"an EUI-64 is not an Ethernet MAC", "node01 mac=02:00:5e:10:00:00:00:01\n", nil, "mac"},
		{"two nodes with one MAC", "a mac=52:54:00:00:00:01\nb mac=52:54:00:00:00:01\n", nil, "mac"},
		{"one name twice", "a mac=52:54:00:00:00:01\na mac=52:54:00:00:00:02\n", nil, "name"},
		{"two nodes with one address", "a mac=52:54:00:00:00:01 address=10.0.0.5/24\nb mac=52:54:00:00:00:02 address=10.0.0.5/16\n", nil, "address"},
		{"one address in a range and on its own", "n[1-2] mac=52:54:00:00:00:[01-02] address=10.0.0.[5-6]\nc mac=52:54:00:00:00:03 address=10.0.0.6\n", nil, "address"},
		{"one IPv6 address written two ways", "a mac=52:54:00:00:00:01 address=fd00::5\nb mac=52:54:00:00:00:02 address=fd00:0::0005/64\n", nil, "address"},
		{"two nodes with one host name", "a mac=52:54:00:00:00:01 hostname=web\nb mac=52:54:00:00:00:02 hostname=web\n", nil, "hostname"},
		{"a host name that is another node's name", "a mac=52:54:00:00:00:01\nb mac=52:54:00:00:00:02 hostname=a\n", nil, "hostname"},
		{"one MAC in two cases", "a mac=52:54:00:00:00:0a\nb mac=52:54:00:00:00:0A\n", nil, "mac"},
		{"a value range of another length", "n[1-3] mac=52:54:00:00:00:[1-2]\n", nil, "mac"},
		{"one MAC for a range", "n[1-2] mac=52:54:00:00:00:01\n", nil, "mac"},
		{"a word that is not key=value", "a mac=52:54:00:00:00:01 ip\n", nil, "ip"},
		{"a key that is not a variable's name", "a mac=52:54:00:00:00:01 1x=2\n", nil, "1x"},
		{"groups and variables: groups in order, the node's own win, ranges expand", "@base overlays=hosts role=x args=quiet\n@compute role=compute overlays=slurm,hosts generation=2\nn[1-2] mac=52:54:00:00:00:[01-02] groups=base,compute overlays=ssh-host-cert ens4.address=192.168.50.[11-12]/24 args=\"\"\n",
			[]Node{
				{Name: "n1", MAC: "52:54:00:00:00:01", Address: "dhcp", Hostname: "n1", Gen: "2", Line: 3, Groups: []string{"base", "compute"}, Overlays: []string{"hosts", "slurm", "ssh-host-cert"}, Vars: map[string]string{"role": "compute", "ens4.address": "192.168.50.11/24"}},
				{Name: "n2", MAC: "52:54:00:00:00:02", Address: "dhcp", Hostname: "n2", Gen: "2", Line: 3, Groups: []string{"base", "compute"}, Overlays: []string{"hosts", "slurm", "ssh-host-cert"}, Vars: map[string]string{"role": "compute", "ens4.address": "192.168.50.12/24"}},
			}, ""},
		{"a node's own variable wins over its group's", "@g role=a\nn mac=52:54:00:00:00:01 groups=g role=b\n",
			[]Node{{Name: "n", MAC: "52:54:00:00:00:01", Address: "dhcp", Hostname: "n", Line: 2, Groups: []string{"g"}, Vars: map[string]string{"role": "b"}}}, ""},
		{"a domain is a DNS name", "n mac=52:54:00:00:00:01 domain=Cluster.example-1.org\n",
			[]Node{{Name: "n", MAC: "52:54:00:00:00:01", Address: "dhcp", Hostname: "n", Line: 1, Vars: map[string]string{"domain": "Cluster.example-1.org"}}}, ""},
		{"root= from a group, a node's own winning", "@img root=nfs-squashfs\nn[1-2] mac=52:54:00:00:00:[01-02] groups=img root=http-erofs\nm mac=52:54:00:00:00:03 groups=img\n",
			[]Node{
				{Name: "n1", MAC: "52:54:00:00:00:01", Address: "dhcp", Hostname: "n1", Root: "http-erofs", Line: 2, Groups: []string{"img"}},
				{Name: "n2", MAC: "52:54:00:00:00:02", Address: "dhcp", Hostname: "n2", Root: "http-erofs", Line: 2, Groups: []string{"img"}},
				{Name: "m", MAC: "52:54:00:00:00:03", Address: "dhcp", Hostname: "m", Root: "nfs-squashfs", Line: 3, Groups: []string{"img"}},
			}, ""},
		{"root=tree is the default said aloud", "n mac=52:54:00:00:00:01 root=tree\n",
			[]Node{{Name: "n", MAC: "52:54:00:00:00:01", Address: "dhcp", Hostname: "n", Root: "tree", Line: 1}}, ""},
		{"an unknown root mode", "n mac=52:54:00:00:00:01 root=squashfs\n", nil, "root"},
		{"a group's unknown root mode", "@g root=http-zip\nn mac=52:54:00:00:00:01 groups=g\n", nil, "root"},
		{"a domain with a pattern's comma", "n mac=52:54:00:00:00:01 domain=x,*\n", nil, "domain"},
		{"a domain with a space", "n mac=52:54:00:00:00:01 domain=\"a b.example\"\n", nil, "domain"},
		{"a domain that is a wildcard", "n mac=52:54:00:00:00:01 domain=*.example\n", nil, "domain"},
		{"a domain of one label", "n mac=52:54:00:00:00:01 domain=lan\n", nil, "domain"},
		{"a domain ending in a dot", "n mac=52:54:00:00:00:01 domain=a.example.\n", nil, "domain"},
		{"a domain with a label past 63", "n mac=52:54:00:00:00:01 domain=" + strings.Repeat("a", 64) + ".example\n", nil, "domain"},
		{"a group's bad domain", "@g domain=x,*\nn mac=52:54:00:00:00:01 groups=g\n", nil, "domain"},
		{"a range's bad domain", "n[1-2] mac=52:54:00:00:00:[01-02] domain=[1-2]x..example\n", nil, "domain"},
		{"a group not defined above", "n mac=52:54:00:00:00:01 groups=g\n@g role=a\n", nil, "groups"},
		{"a group defined twice", "@g role=a\n@g role=b\nn mac=52:54:00:00:00:01\n", nil, "name"},
		{"a group that names a MAC", "@g mac=52:54:00:00:00:01\nn mac=52:54:00:00:00:02\n", nil, "mac"},
		{"groups do not nest", "@g groups=h\nn mac=52:54:00:00:00:02\n", nil, "groups"},
		{"a group's bad name", "@G x=1\nn mac=52:54:00:00:00:02\n", nil, "name"},
		{"a bad overlay name", "n mac=52:54:00:00:00:02 overlays=a,../b\n", nil, "overlays"},
		{"a group's generation that is a path", "@g generation=../1\nn mac=52:54:00:00:00:02\n", nil, "generation"},
		{"a field twice", "a mac=52:54:00:00:00:01 mac=52:54:00:00:00:02\n", nil, "mac"},
		{"an address that is not one", "a mac=52:54:00:00:00:01 address=10.0.0\n", nil, "address"},
		{"a name that cannot be a host name", "Node_1 mac=52:54:00:00:00:01\n", nil, "name"},
		{"a name that could leave a directory", "../x mac=52:54:00:00:00:01\n", nil, "name"},
		{"shell characters in args", "a mac=52:54:00:00:00:01 args=\"x;reboot\"\n", nil, "args"},
		{"a generation that is a path", "a mac=52:54:00:00:00:01 generation=../1\n", nil, "generation"},
		{"an unclosed quote", "a mac=52:54:00:00:00:01 args=\"quiet\n", nil, ""},
		{"no nodes at all", "# empty\n", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(strings.NewReader(tt.file), "nodes")
			if tt.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got  %+v\nwant %+v", got, tt.want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrSyntax) || e.Field != tt.field {
				t.Fatalf("error %v, want an inventory error for field %q", err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "inventory nodes:") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line naming the file", err)
			}
		})
	}
}

func FuzzRead(f *testing.F) {
	f.Add("n[001-004] mac=52:54:00:00:01:[0a-0d] address=10.0.0.[1-4]/24 args=\"quiet\"\n")
	f.Add("a mac=52:54:00:00:00:01 hostname=b generation=x.1 # c\n")
	f.Add("@g overlays=hosts,x role=y args=quiet\nn[1-2] mac=52:54:00:00:00:[1-2] groups=g ens4.address=10.1.0.[1-2]/24\n")
	f.Add("@i root=nfs-squashfs\nn mac=52:54:00:00:00:01 groups=i\nm mac=52:54:00:00:00:02 root=http-erofs\n")
	f.Fuzz(func(t *testing.T, file string) {
		nodes, err := Read(strings.NewReader(file), "f")
		if err != nil {
			return
		}
		if len(nodes) == 0 || len(nodes) > MaxNodes {
			t.Fatalf("%d nodes", len(nodes))
		}
		names, macs, hosts, addrs := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, n := range nodes {
			if names[n.Name] || macs[n.MAC] || hosts[n.Hostname] || validHostname(n.Name) != nil || validHostname(n.Hostname) != nil {
				t.Fatalf("node %+v: duplicate or invalid", n)
			}
			if n.Address != "dhcp" {
				a := netip.MustParsePrefix(n.Address).Addr().Unmap().String()
				if addrs[a] {
					t.Fatalf("node %+v: address given twice", n)
				}
				addrs[a] = true
			}
			names[n.Name], macs[n.MAC], hosts[n.Hostname] = true, true, true
			if n.Root != "" && !slices.Contains(RootModes, n.Root) {
				t.Fatalf("node %+v: root mode %q", n, n.Root)
			}
			for k := range n.Vars {
				if knownKey[k] || !keyRe.MatchString(k) {
					t.Fatalf("node %+v: variable %q", n, k)
				}
			}
			for _, o := range n.Overlays {
				if validHostname(o) != nil {
					t.Fatalf("node %+v: overlay %q", n, o)
				}
			}
		}
	})
}

// TestRootModesFollowFormats: root= offers each format nroot image
// create --fsimage writes, over NFS and over HTTP, and no other.
func TestRootModesFollowFormats(t *testing.T) {
	want := []string{RootTree}
	for _, f := range fsimage.Formats {
		want = append(want, "nfs-"+string(f), "http-"+string(f))
	}
	if !slices.Equal(RootModes, want) {
		t.Fatalf("RootModes %v, want %v (build/fsimage's Formats)", RootModes, want)
	}
}
