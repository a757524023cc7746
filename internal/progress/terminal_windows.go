package progress

import "golang.org/x/sys/windows"

// isTerminal: a console handle has a console mode; a pipe or file has not.
func isTerminal(fd uintptr) bool {
	var mode uint32
	return windows.GetConsoleMode(windows.Handle(fd), &mode) == nil
}
