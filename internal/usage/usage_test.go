package usage

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
		is   error
	}{
		{"an option", &Error{Option: "--server", Value: "x y", Why: "give an address"}, `--server "x y": give an address`, nil},
		{"an option with a cause", &Error{Option: "--image", Value: "f", Why: "cannot be read", Err: fs.ErrNotExist}, `--image "f": cannot be read: file does not exist`, fs.ErrNotExist},
		{"a sentence", Errorf("accepts 1 arg(s), received %d", 2), "accepts 1 arg(s), received 2", nil},
		{"a sentence wrapping", Errorf("reading nodes.txt: %w", fs.ErrPermission), "reading nodes.txt: permission denied", fs.ErrPermission},
		{"wrapped further", fmt.Errorf("pxe: %w", &Error{Option: "IMAGE", Value: "/a b", Why: "no spaces"}), `pxe: IMAGE "/a b": no spaces`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if !Is(tt.err) {
				t.Error("Is = false")
			}
			if tt.is != nil && !errors.Is(tt.err, tt.is) {
				t.Errorf("does not wrap %v", tt.is)
			}
		})
	}
	if Is(errors.New("plain")) || Is(nil) {
		t.Error("Is true for an error that is not a usage error")
	}
}
