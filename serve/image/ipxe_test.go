package image

import (
	"fmt"
	"regexp"
	"strings"
)

// ipxeRun is what a run of an iPXE script did: the kernel and initrd
// lines it gave (variables expanded), what it echoed, and how it ended
// ("boot", or "exit N").
type ipxeRun struct {
	Kernel  string
	Initrds []string
	Echo    []string
	End     string
}

var ipxeVar = regexp.MustCompile(`\$\{([A-Za-z0-9_:.-]+)\}`)

// runIPXE follows a script as iPXE does for the commands nroot's scripts
// use (set, isset, goto, kernel, initrd, echo, exit, boot, with || and
// labels), with vars set before it runs. An unset variable expands to
// nothing, as in iPXE; a goto to a missing label fails, and a failure
// without || ends the script with an error. Any other command is an
// error: the scripts must stay within what this checks.
func runIPXE(script string, vars map[string]string) (ipxeRun, error) {
	var run ipxeRun
	lines := strings.Split(script, "\n")
	if lines[0] != "#!ipxe" {
		return run, fmt.Errorf("first line %q, want #!ipxe", lines[0])
	}
	labels := map[string]int{}
	for i, l := range lines {
		if name, ok := strings.CutPrefix(l, ":"); ok {
			if _, dup := labels[name]; dup {
				return run, fmt.Errorf("label %s twice", name)
			}
			labels[name] = i
		}
	}
	v := map[string]string{}
	for k, x := range vars {
		v[k] = x
	}
	expand := func(s string) string {
		return ipxeVar.ReplaceAllStringFunc(s, func(m string) string { return v[m[2:len(m)-1]] })
	}
	// exec runs one command; jump is the line to go on from, -1 for the
	// next.
	exec := func(cmd string) (ok bool, jump int, err error) {
		f := strings.Fields(expand(cmd))
		if len(f) == 0 {
			return false, -1, fmt.Errorf("empty command in %q", cmd)
		}
		switch f[0] {
		case "set":
			if len(f) < 3 {
				return false, -1, fmt.Errorf("%q: set NAME VALUE", cmd)
			}
			v[f[1]] = strings.Join(f[2:], " ")
			return true, -1, nil
		case "isset":
			return len(f) > 1, -1, nil
		case "goto":
			if len(f) != 2 {
				return false, -1, fmt.Errorf("%q: goto LABEL", cmd)
			}
			if at, ok := labels[f[1]]; ok {
				return true, at, nil
			}
			return false, -1, nil
		case "kernel":
			run.Kernel = strings.Join(f[1:], " ")
		case "initrd":
			run.Initrds = append(run.Initrds, strings.Join(f[1:], " "))
		case "echo":
			run.Echo = append(run.Echo, strings.Join(f[1:], " "))
		case "exit", "boot":
			run.End = strings.Join(f, " ")
		default:
			return false, -1, fmt.Errorf("command %q is not one this check knows", f[0])
		}
		return true, -1, nil
	}
	for i, steps := 1, 0; i < len(lines); steps++ {
		if steps > 1000 {
			return run, fmt.Errorf("more than 1000 steps: a loop")
		}
		l := strings.TrimSpace(lines[i])
		i++
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") {
			continue
		}
		if strings.Contains(l, "&&") || strings.ContainsAny(l, "\"'\\#") {
			return run, fmt.Errorf("%q: && quotes, backslashes and # are not checked here", l)
		}
		cmds := strings.Split(l, "||")
		for n, c := range cmds {
			ok, jump, err := exec(strings.TrimSpace(c))
			if err != nil {
				return run, err
			}
			if jump >= 0 {
				i = jump + 1
			}
			if ok || jump >= 0 {
				break
			}
			if n == len(cmds)-1 {
				return run, fmt.Errorf("%q failed, and the script ends with an error", l)
			}
		}
		if run.End != "" {
			return run, nil
		}
	}
	return run, fmt.Errorf("the script ran off its end")
}
