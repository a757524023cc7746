// Package buildinfo says which nroot made a file or report: the module
// version and VCS revision Go recorded in the binary.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Info is the version of this build.
type Info struct {
	Version  string `json:"version"`            // module version, or "(devel)"
	Revision string `json:"revision,omitempty"` // VCS revision
	Time     string `json:"time,omitempty"`     // VCS commit time
	Modified bool   `json:"modified,omitempty"` // built from a changed work tree
}

// stamped is the release version make dist writes into the binary
// (-ldflags -X nroot/internal/buildinfo.stamped=VERSION); it wins over
// the module version, which a build from a checkout leaves "(devel)".
var stamped string

// Read returns the build's Info.
func Read() Info {
	i := Info{Version: "(devel)"}
	if stamped != "" {
		i.Version = stamped
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" && stamped == "" {
		i.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// String is the one-line form: "(devel) 1a2b3c4d5e6f+dirty 2026-11-29T23:00:00Z".
func (i Info) String() string {
	parts := []string{i.Version}
	if i.Revision != "" {
		r := i.Revision
		if len(r) > 12 {
			r = r[:12]
		}
		if i.Modified {
			r += "+dirty"
		}
		if !strings.Contains(i.Version, r) {
			parts = append(parts, r)
		}
	}
	if i.Time != "" {
		parts = append(parts, i.Time)
	}
	return strings.Join(parts, " ")
}
