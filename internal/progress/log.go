package progress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// Handler writes nroot's log in its one human style: each line starts
// with the stage it is about in brackets ("[resolve]", "[unpack]"), or
// "[nroot]", then the message and its values; warnings say so. Progress
// bars and maintainer-script output (indented, or in a log file) share
// the same prefix, and errors alone start with "nroot:".
type Handler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	attrs []slog.Attr
}

// NewHandler returns a Handler writing to w what is at level or above.
func NewHandler(w io.Writer, level slog.Leveler) *Handler {
	return &Handler{mu: &sync.Mutex{}, w: w, level: level}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	stage := "nroot"
	var vals []string
	add := func(a slog.Attr) bool {
		if a.Key == "stage" {
			stage = a.Value.String()
			return true
		}
		vals = append(vals, a.Key+"="+quote(a.Value.String()))
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] ", stage)
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	if len(vals) > 0 {
		b.WriteString(" " + strings.Join(vals, " "))
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &c
}

// WithGroup implements slog.Handler; groups are not shown.
func (h *Handler) WithGroup(string) slog.Handler { return h }

// Indent writes everything through to w with each line indented, so the
// output of programs run for a stage reads as that stage's detail; lines
// that are nroot's own ("[stage] ...") stay as they are.
func Indent(w io.Writer, prefix string) io.Writer {
	if w == nil {
		return nil
	}
	return &indenter{w: w, prefix: prefix, bol: true}
}

type indenter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	bol    bool
}

func (in *indenter) Write(p []byte) (int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	var b []byte
	for _, c := range p {
		if in.bol {
			if c != '[' {
				b = append(b, in.prefix...)
			}
			in.bol = false
		}
		b = append(b, c)
		if c == '\n' {
			in.bol = true
		}
	}
	if _, err := in.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}
