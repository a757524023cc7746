// Package usage is the one error for bad input a user gave: a flag, an
// argument, or a field of a file they wrote. It names the input as the
// user spells it and says what to give instead; the command ends with
// exit status 64 (EX_USAGE) on it, whichever package returned it.
package usage

import (
	"errors"
	"fmt"
)

// Error is bad input: Option as the user spells it (--server, SUITE,
// ROOT, nodes.txt:3 mac), the Value given, and Why, which says what to
// give instead. A command's own complaint (wrong number of arguments)
// has no Option and carries Err.
type Error struct {
	Option string
	Value  string
	Why    string
	Err    error
}

func (e *Error) Error() string {
	switch {
	case e.Option == "" && e.Err != nil:
		return e.Err.Error()
	case e.Option == "":
		return e.Why
	case e.Err != nil:
		return fmt.Sprintf("%s %q: %s: %v", e.Option, e.Value, e.Why, e.Err)
	}
	return fmt.Sprintf("%s %q: %s", e.Option, e.Value, e.Why)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf is a usage error said in a sentence: fmt.Errorf's verbs, %w too.
func Errorf(format string, a ...any) error {
	return &Error{Err: fmt.Errorf(format, a...)}
}

// Is says whether err is, or wraps, a usage error.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
