package nspawn

import "testing"

func TestCapEff(t *testing.T) {
	tests := []struct {
		status string
		want   uint64
		ok     bool
		admin  bool
	}{
		{"Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n", 0x1fffeffffff, true, true},
		{"CapEff:\t000001fffedfffff\n", 0x1fffedfffff, true, false}, // capsh --drop=cap_sys_admin
		{"CapEff:\tzz\n", 0, false, true},
		{"Name:\tx\n", 0, false, true},
	}
	for _, tt := range tests {
		got, ok := capEff(tt.status)
		if got != tt.want || ok != tt.ok {
			t.Errorf("capEff(%q) = %x, %v; want %x, %v", tt.status, got, ok, tt.want, tt.ok)
		}
		if admin := !ok || got&(1<<capSysAdmin) != 0; admin != tt.admin {
			t.Errorf("%q: CAP_SYS_ADMIN %v, want %v", tt.status, admin, tt.admin)
		}
	}
}

func FuzzCapEff(f *testing.F) {
	f.Add("CapEff:\t000001fffeffffff\n")
	f.Fuzz(func(t *testing.T, s string) {
		if v, ok := capEff(s); !ok && v != 0 {
			t.Fatalf("capEff(%q) = %x without a value", s, v)
		}
	})
}
