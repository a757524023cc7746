package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// stopProfile ends the CPU profile --cpuprofile started, if any; main
// calls it once the command has returned.
var stopProfile = func() error { return nil }

// startProfile starts a CPU profile written to path (--cpuprofile), for
// go tool pprof. Empty path: none.
func startProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return usageErr("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	stopProfile = func() error {
		stopProfile = func() error { return nil }
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile %s: %w", path, err)
		}
		return nil
	}
	return nil
}
