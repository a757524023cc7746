package report

import (
	"encoding/xml"
	"fmt"

	"nroot/internal/atomicfile"
)

// Skip is a check that does not apply to what was checked (a dracut-only
// check of an image another generator made): it neither passes nor
// fails, and JUnit shows it as skipped.
const Skip Status = "SKIP"

// JUnit is a JUnit XML report as GitLab and Jenkins read it: one
// testsuite per command run, one testcase per check.
type JUnit struct {
	XMLName xml.Name    `xml:"testsuites"`
	Suites  []TestSuite `xml:"testsuite"`
}

// TestSuite is the checks of one command run.
type TestSuite struct {
	Name     string     `xml:"name,attr"`
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Skipped  int        `xml:"skipped,attr"`
	Cases    []TestCase `xml:"testcase"`
}

// TestCase is one check. A failed check has a Failure, one that does not
// apply is Skipped; a warning passes, its detail in SystemOut.
type TestCase struct {
	Name      string   `xml:"name,attr"`
	ClassName string   `xml:"classname,attr"`
	Failure   *Message `xml:"failure,omitempty"`
	Skipped   *Message `xml:"skipped,omitempty"`
	SystemOut string   `xml:"system-out,omitempty"`
}

// Message is a failure's or a skip's reason.
type Message struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// NewJUnit makes the report of one command run: suite names the command
// and its subject ("initrd verify IMAGE").
func NewJUnit(suite string, checks []Check) JUnit {
	s := TestSuite{Name: suite, Tests: len(checks), Cases: []TestCase{}}
	for _, c := range checks {
		tc := TestCase{Name: c.Name, ClassName: suite}
		text := c.Detail
		if c.Fix != "" {
			text += "; fix: " + c.Fix
		}
		switch c.Status {
		case Fail:
			s.Failures++
			tc.Failure = &Message{Message: c.Detail, Text: text}
		case Skip:
			s.Skipped++
			tc.Skipped = &Message{Message: c.Detail}
		default:
			tc.SystemOut = string(c.Status) + " " + text
		}
		s.Cases = append(s.Cases, tc)
	}
	return JUnit{Suites: []TestSuite{s}}
}

// WriteJUnit writes the checks of one command run to path as JUnit XML,
// atomically, failed checks or not.
func WriteJUnit(path, suite string, checks []Check) error {
	b, err := xml.MarshalIndent(NewJUnit(suite, checks), "", "  ")
	if err != nil {
		return fmt.Errorf("--junit %s: %w", path, err)
	}
	b = append([]byte(xml.Header), append(b, '\n')...)
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("--junit %s: %w", path, err)
	}
	return nil
}
