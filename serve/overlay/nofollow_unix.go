//go:build unix

package overlay

import "syscall"

const oNoFollow = syscall.O_NOFOLLOW
