package rootfs

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"nroot/build/deb"
	"nroot/format/control"
	"nroot/internal/fsroot"
)

// Unpacked is a package Unpack wrote into the tree and the dpkg database,
// as Configure takes it: its control data and the files it shipped.
type Unpacked struct {
	ctl      *deb.Control
	manifest *deb.Manifest
	multi    bool // Multi-Arch: same, whose info files carry the architecture
}

func (p *Unpacked) name() string { return p.ctl.Name() }

// infoName is the base name of the package's files in info/.
func (p *Unpacked) infoName() string {
	if p.multi {
		return p.ctl.Name() + ":" + p.ctl.Fields.Get("Architecture")
	}
	return p.ctl.Name()
}

// maintainerFiles are the control members dpkg keeps in info/.
var maintainerFiles = []string{"preinst", "postinst", "prerm", "postrm", "config", "templates", "triggers", "shlibs", "symbols", "md5sums", "conffiles"}

const admindir = "var/lib/dpkg"

// writeDpkgDB writes the dpkg database for packages unpacked but not yet
// configured: status ("install ok unpacked"), info/PKG.{list,md5sums,
// conffiles,preinst,...}, trigger interests, and the empty files dpkg
// expects, so that `dpkg --configure -a` finishes the job.
func writeDpkgDB(root *fsroot.Root, pkgs []*Unpacked, archs []string) error {
	for _, d := range []string{admindir, admindir + "/info", admindir + "/updates", admindir + "/triggers", admindir + "/alternatives", admindir + "/parts"} {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	write := func(rel string, data []byte, mode uint32) error {
		return root.WriteFile(rel, bytes.NewReader(data), int64(len(data)), fsroot.Meta{Mode: mode})
	}
	sorted := append([]*Unpacked(nil), pkgs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].infoName() < sorted[j].infoName() })

	var status bytes.Buffer
	w := control.NewWriter(&status)
	fileTriggers := map[string][]string{}
	namedTriggers := map[string][]string{}
	for _, p := range sorted {
		info := admindir + "/info/" + p.infoName()
		if err := write(info+".list", []byte(strings.Join(p.manifest.Paths, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		for _, f := range maintainerFiles {
			b, ok := p.ctl.Files[f]
			if !ok {
				continue
			}
			mode := uint32(0o644)
			if p.ctl.Modes[f]&0o111 != 0 {
				mode = 0o755
			}
			if err := write(info+"."+f, b, mode); err != nil {
				return err
			}
		}
		para := statusParagraph(p)
		if err := w.Write(para); err != nil {
			return fmt.Errorf("status of %s: %w", p.name(), err)
		}
		interests(p, fileTriggers, namedTriggers)
	}
	if err := write(admindir+"/status", status.Bytes(), 0o644); err != nil {
		return err
	}
	if err := write(admindir+"/info/format", []byte("1\n"), 0o644); err != nil {
		return err
	}
	for _, f := range []string{"available", "diversions", "statoverride"} {
		if err := write(admindir+"/"+f, nil, 0o644); err != nil {
			return err
		}
	}
	if err := write(admindir+"/arch", []byte(strings.Join(archs, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	// Trigger interests, as dpkg records them when it unpacks.
	var file bytes.Buffer
	for _, p := range sortedKeys(fileTriggers) {
		for _, pkg := range fileTriggers[p] {
			fmt.Fprintf(&file, "%s %s\n", p, pkg)
		}
	}
	if err := write(admindir+"/triggers/File", file.Bytes(), 0o644); err != nil {
		return err
	}
	for _, name := range sortedKeys(namedTriggers) {
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			continue
		}
		if err := write(admindir+"/triggers/"+name, []byte(strings.Join(namedTriggers[name], "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return write(admindir+"/triggers/Unincorp", nil, 0o644)
}

func sortedKeys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// interests reads a package's triggers control file.
func interests(p *Unpacked, file, named map[string][]string) {
	for _, line := range strings.Split(string(p.ctl.Files["triggers"]), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "interest") {
			continue
		}
		who := p.name()
		if f[0] == "interest-noawait" {
			who += "/noawait"
		}
		if strings.HasPrefix(f[1], "/") {
			file[f[1]] = append(file[f[1]], who)
		} else {
			named[f[1]] = append(named[f[1]], who)
		}
	}
}

// statusFieldOrder is the order dpkg writes status fields in.
var statusFieldOrder = []string{"Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size",
	"Origin", "Maintainer", "Bugs", "Architecture", "Multi-Arch", "Source", "Version", "Config-Version", "Replaces",
	"Provides", "Depends", "Pre-Depends", "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances", "Conffiles",
	"Description", "Triggers-Pending", "Triggers-Awaited"}

// statusParagraph is the package's control fields with its Status and,
// as for a freshly unpacked package, its conffiles marked "newconffile".
func statusParagraph(p *Unpacked) *control.Paragraph {
	src := p.ctl.Fields
	out := &control.Paragraph{}
	extra := map[string]string{"Status": "install ok unpacked"}
	if cf := p.ctl.Conffiles(); len(cf) > 0 {
		var b strings.Builder
		for _, c := range cf {
			b.WriteString("\n" + c + " newconffile")
		}
		extra["Conffiles"] = b.String()
	}
	seen := map[string]bool{}
	for _, name := range statusFieldOrder {
		if v, ok := extra[name]; ok {
			out.Fields = append(out.Fields, control.Field{Name: name, Value: v})
			seen[strings.ToLower(name)] = true
			continue
		}
		if v, ok := src.Lookup(name); ok {
			out.Fields = append(out.Fields, control.Field{Name: name, Value: v})
			seen[strings.ToLower(name)] = true
		}
	}
	for _, f := range src.Fields {
		if !seen[strings.ToLower(f.Name)] {
			out.Fields = append(out.Fields, f)
		}
	}
	return out
}

// conffileSet returns a package's conffiles as a set of absolute paths.
func conffileSet(c *deb.Control) map[string]bool {
	out := map[string]bool{}
	for _, f := range c.Conffiles() {
		out[path.Clean(f)] = true
	}
	return out
}
