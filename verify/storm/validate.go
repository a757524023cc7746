package storm

import (
	"fmt"
	"io"
)

// PerBoot is what one server gave each boot of a group booting at once:
// real nodes through a Recorder, or a replay's clients.
type PerBoot struct {
	Source    string  `json:"source"` // real, replay, or "replay paced 1x" for a paced replay
	Boots     int     `json:"boots"`
	ServerCPU float64 `json:"server_cpu_seconds_per_boot"`
	RPCs      float64 `json:"rpcs_per_boot"`
	Bytes     float64 `json:"bytes_per_boot"` // NFS READ payload
	CallP50   float64 `json:"call_p50_seconds"`
	CallP99   float64 `json:"call_p99_seconds"`
	Seconds   float64 `json:"seconds"` // the group's wall time, its first start to its last end
}

// RealPerBoot divides what a Recorder saw of boots nodes booting at once
// (its working set holds them all) and the server's CPU time over them.
func RealPerBoot(ws *WorkingSet, boots int, serverCPU, seconds float64) PerBoot {
	n := float64(max(boots, 1))
	return PerBoot{Source: "real", Boots: boots, ServerCPU: serverCPU / n, RPCs: float64(ws.RPCs) / n, Bytes: float64(ws.Bytes) / n,
		CallP50: ws.CallP50, CallP99: ws.CallP99, Seconds: seconds}
}

// ReplayPerBoot divides a replay's result by its clients. The run must
// have had no BootURLs, whose bytes and requests a recorded NFS boot
// does not hold, and the NFS server alone in its ServerPIDs.
func ReplayPerBoot(r *Result) PerBoot {
	n := float64(max(r.Clients, 1))
	source := "replay"
	if r.Pace > 0 {
		source = fmt.Sprintf("replay paced %gx", r.Pace)
	}
	return PerBoot{Source: source, Boots: r.Clients, ServerCPU: r.ServerCPU / n, RPCs: float64(r.RPCs) / n, Bytes: float64(r.Bytes) / n,
		CallP50: r.CallP50, CallP99: r.CallP99, Seconds: r.Max}
}

// Validation sets replays' predictions beside real nodes of the same
// mode booting at once, as many as each replay's clients.
type Validation struct {
	Mode    string    `json:"mode"`
	Real    PerBoot   `json:"real"`
	Replays []PerBoot `json:"replays"`
}

// ratio is replay over real, 0 when the real figure is 0.
func ratio(replay, real float64) float64 {
	if real == 0 {
		return 0
	}
	return replay / real
}

// Ratios are a replay's figures over the real ones: server CPU, RPCs
// and bytes per boot, and the per-call p50 and p99.
func (v Validation) Ratios(replay PerBoot) (cpu, rpcs, bytes, p50, p99 float64) {
	return ratio(replay.ServerCPU, v.Real.ServerCPU), ratio(replay.RPCs, v.Real.RPCs), ratio(replay.Bytes, v.Real.Bytes),
		ratio(replay.CallP50, v.Real.CallP50), ratio(replay.CallP99, v.Real.CallP99)
}

// WriteValidation prints each validation: the real nodes, then each
// replay and its figures over the real ones.
func WriteValidation(w io.Writer, vs []Validation) {
	fmt.Fprintf(w, "%-10s %5s %-15s %11s %10s %9s %9s %9s %8s\n", "mode", "boots", "source", "CPU s/boot", "RPCs/boot", "MB/boot", "call p50", "call p99", "wall s")
	row := func(mode string, p PerBoot) {
		fmt.Fprintf(w, "%-10s %5d %-15s %11.3f %10.0f %9.1f %9.2f %9.2f %8.1f\n", mode, p.Boots, p.Source, p.ServerCPU, p.RPCs, p.Bytes/1e6, p.CallP50*1e3, p.CallP99*1e3, p.Seconds)
	}
	for _, v := range vs {
		row(v.Mode, v.Real)
		for _, p := range v.Replays {
			row(v.Mode, p)
			cpu, rpcs, bytes, p50, p99 := v.Ratios(p)
			fmt.Fprintf(w, "%-10s %5d %-15s %10.2fx %9.2fx %8.2fx %8.2fx %8.2fx %8s\n", v.Mode, p.Boots, "  / real", cpu, rpcs, bytes, p50, p99, "-")
		}
	}
	fmt.Fprintln(w, "CPU: the NFS server's user and system time; call p50/p99 in ms, the real ones at the recorder; / real: the replay's over the real nodes'; paced: each call no sooner than recorded")
}
