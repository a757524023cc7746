package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"nroot/format/report"
)

// printJSON prints a command's --json document. An object gets the
// version of nroot that wrote it, as "nroot_version".
func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var top map[string]json.RawMessage
	if len(b) > 1 && b[0] == '{' && json.Unmarshal(b, &top) == nil && top["nroot_version"] == nil {
		ver, _ := json.Marshal(version().String())
		sep := ","
		if b[1] == '}' {
			sep = ""
		}
		b = append(append(append([]byte(`{"nroot_version":`), ver...), sep...), b[1:]...)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

// reportChecks prints checks in the one shape every command uses, as
// text or JSON ({KEY: subject, "checks": [...], "pass": bool}), and fails
// with status 1 when one failed.
func reportChecks(subject, key string, checks []report.Check, asJSON bool) error {
	failed := report.Failed(checks)
	if asJSON {
		if err := printJSON(map[string]any{key: subject, "checks": checks, "pass": failed == 0}); err != nil {
			return err
		}
	} else {
		printChecks(os.Stdout, checks)
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s: %d of %d checks failed", subject, failed, len(checks))}
	}
	return nil
}

// printChecks prints one line a check: status, name, detail, and what to
// do about a failure or warning.
func printChecks(w io.Writer, checks []report.Check) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range checks {
		line := fmt.Sprintf("%s\t%s\t%s", c.Status, c.Name, c.Detail)
		if c.Fix != "" && c.Status != report.Pass {
			line += "; fix: " + c.Fix
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}
