package storm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
)

// TestLoopbackClientDials: whatever a request asks for, the storm's
// client dials 127.0.0.1 alone. Any other address is refused after the
// socket is made and before it connects, so the test sends nothing.
func TestLoopbackClientDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := loopbackClient(1).Transport.(*http.Transport).DialContext
	tests := []struct {
		addr string
		want error
	}{
		{ln.Addr().String(), nil},
		{"127.0.0.2:80", ErrNotLoopback},
		{"192.0.2.1:80", ErrNotLoopback},
		{"[::1]:80", ErrNotLoopback},
	}
	for _, tt := range tests {
		c, err := dial(context.Background(), "tcp", tt.addr)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("dial %s: %v, want %v", tt.addr, err, tt.want)
		}
	}
}
