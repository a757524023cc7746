package storm_test

import (
	"os"
	"testing"

	"nroot/verify/storm"
)

// TestMain lets the test binary be a run's worker process.
func TestMain(m *testing.M) {
	storm.RunWorker()
	os.Exit(m.Run())
}
