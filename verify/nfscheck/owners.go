package nfscheck

import (
	"fmt"
	"strings"

	"nroot/format/report"
	"nroot/verify/nfsclient"
)

// ownersCheck says whether every owner name the server sent maps.
func ownersCheck(un []nfsclient.Unmapped, from string) Check {
	if len(un) == 0 {
		return Check{Name: "owner-names", Status: report.Pass, Detail: "every owner and group name the server sent is in " + from}
	}
	var ex []string
	for _, u := range firstUnmapped(un, 5) {
		ex = append(ex, fmt.Sprintf("/%s (%s %q)", u.Path, u.Field, u.Name))
	}
	return Check{Name: "owner-names", Status: report.Fail,
		Detail: fmt.Sprintf("%d owners and groups the server sent as names are not in %s: %s", len(un), from, strings.Join(ex, ", ")),
		Fix:    "add the users and groups to the image, or have the server send numbers (" + numericOwnersFix + ")"}
}

// numericOwnersFix says how the servers are told to send numbers.
const numericOwnersFix = "nfs-ganesha: NFSV4 { Only_Numeric_Owners = true; }; the kernel's server: nfs4_disable_idmapping"

func firstUnmapped(u []nfsclient.Unmapped, n int) []nfsclient.Unmapped {
	if len(u) > n {
		return u[:n]
	}
	return u
}
