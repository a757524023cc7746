// Package report holds the vocabulary nroot's JSON documents share, so
// that a field means one thing whichever command wrote it.
package report

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Mode is a file's permission bits with setuid, setgid and sticky
// (never the type, which is a separate "type" field). It is written as
// four octal digits, as chmod takes it: "0755", "4755".
type Mode uint32

// MarshalJSON writes the mode as "0755".
func (m Mode) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%04o", uint32(m)&0o7777))
}

// UnmarshalJSON reads "0755".
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("mode %q: want four octal digits such as \"0755\"", s)
	}
	*m = Mode(v)
	return nil
}
