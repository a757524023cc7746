package parallel

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestEach(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		n, lim  int
		failAt  int // -1: none
		wantErr error
	}{
		{"all run", 50, 4, -1, nil},
		{"limit below one", 5, 0, -1, nil},
		{"first error wins", 50, 4, 3, boom},
		{"nothing", 0, 4, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var running, peak, done atomic.Int64
			err := Each(context.Background(), tt.n, tt.lim, func(ctx context.Context, i int) error {
				r := running.Add(1)
				defer running.Add(-1)
				for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
				}
				if i == tt.failAt {
					return boom
				}
				select {
				case <-time.After(time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
				done.Add(1)
				return nil
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if p := peak.Load(); p > int64(max(tt.lim, 1)) {
				t.Errorf("%d ran at once, limit %d", p, tt.lim)
			}
			if tt.wantErr == nil && done.Load() != int64(tt.n) {
				t.Errorf("%d of %d done", done.Load(), tt.n)
			}
			if tt.wantErr != nil && done.Load() == int64(tt.n) {
				t.Error("the error did not stop the rest")
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Each(ctx, 10, 2, func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
