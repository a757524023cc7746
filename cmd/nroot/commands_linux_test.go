package main

import (
	"slices"
	"testing"
)

// TestLinuxOnlyNamed: the list other systems' stand-ins are made from
// names exactly the Linux commands, so none is missing from a darwin or
// windows build's help, and none is named there that does not exist.
func TestLinuxOnlyNamed(t *testing.T) {
	var got, want []string
	for _, c := range linuxCommands(&globals{}) {
		got = append(got, c.Name())
	}
	for _, c := range linuxOnly {
		want = append(want, c.name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("linuxCommands %v, linuxOnly %v", got, want)
	}
}
