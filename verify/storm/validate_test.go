package storm

import (
	"math"
	"strings"
	"testing"
)

func TestValidation(t *testing.T) {
	ws := &WorkingSet{RPCs: 21000, Bytes: 123e6, CallP50: 0.0004, CallP99: 0.005}
	real := RealPerBoot(ws, 3, 2.4, 180)
	tests := []struct {
		name                       string
		replay                     Result
		cpu, rpcs, bytes, p50, p99 float64
	}{
		{"the replay as the real", Result{Clients: 3, ServerCPU: 2.4, RPCs: 21000, Bytes: 123e6, CallP50: 0.0004, CallP99: 0.005}, 1, 1, 1, 1, 1},
		{"half the CPU, more calls", Result{Clients: 3, ServerCPU: 1.2, RPCs: 23100, Bytes: 123e6, CallP50: 0.0002, CallP99: 0.01}, 0.5, 1.1, 1, 0.5, 2},
		{"one client of three's figures", Result{Clients: 1, ServerCPU: 0.8, RPCs: 7000, Bytes: 41e6, CallP50: 0.0004, CallP99: 0.005}, 1, 1, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Validation{Mode: "tree", Real: real, Replays: []PerBoot{ReplayPerBoot(&tt.replay)}}
			cpu, rpcs, bytes, p50, p99 := v.Ratios(v.Replays[0])
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"CPU", cpu, tt.cpu}, {"RPCs", rpcs, tt.rpcs}, {"bytes", bytes, tt.bytes}, {"p50", p50, tt.p50}, {"p99", p99, tt.p99}} {
				if math.Abs(c.got-c.want) > 1e-9 {
					t.Errorf("%s ratio %g, want %g", c.what, c.got, c.want)
				}
			}
			var b strings.Builder
			WriteValidation(&b, []Validation{v})
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if len(lines) != 5 || !strings.Contains(lines[1], " real ") || !strings.Contains(lines[2], " replay ") || !strings.Contains(lines[3], " / real ") {
				t.Errorf("table:\n%s", b.String())
			}
		})
	}
	if cpu, _, _, _, _ := (Validation{}).Ratios(PerBoot{ServerCPU: 1}); cpu != 0 {
		t.Errorf("a ratio over a real 0 is %g, want 0 (not measured)", cpu)
	}
	if p := ReplayPerBoot(&Result{Clients: 3, Pace: 1}); p.Source != "replay paced 1x" {
		t.Errorf("a paced replay is %q", p.Source)
	}
	if math.Abs(real.ServerCPU-0.8) > 1e-9 || real.RPCs != 7000 || real.Bytes != 41e6 || real.Seconds != 180 {
		t.Errorf("real per boot %+v", real)
	}
}
