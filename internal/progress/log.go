package progress

import (
	"bytes"
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
// bars share the prefix; the output of programs run for a stage (Output)
// is indented under it; and errors alone start with "nroot:".
type Handler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	attrs []slog.Attr
	// stagesOnly drops programs' output (StagesOnly).
	stagesOnly bool
}

// StagesOnly returns a Handler like h that leaves out programs' output,
// for a terminal while a log file keeps it.
func (h *Handler) StagesOnly() *Handler {
	c := *h
	c.stagesOnly = true
	return &c
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
	output := false
	add := func(a slog.Attr) bool {
		switch a.Key {
		case "stage":
			stage = a.Value.String()
			return true
		case outputKey:
			output = a.Value.Bool()
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
	if output {
		if h.stagesOnly {
			return nil
		}
		if !strings.HasPrefix(r.Message, "[") {
			b.WriteString("    ")
		}
		b.WriteString(r.Message)
		b.WriteByte('\n')
		return h.write(b.String())
	}
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
	return h.write(b.String())
}

func (h *Handler) write(s string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, s)
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

// outputKey marks a record that carries one line a program printed
// (Output); the Handler writes it indented, under the stage's own lines.
const outputKey = "nroot.output"

// MaxLine bounds one line of a program's output: a longer line is logged
// in pieces of this size.
const MaxLine = 4096

// Output returns a writer that logs each line written to it as one record
// of log at Info, for stage: the output of a program run for that stage
// (apt, dpkg, a maintainer script, a hook, dracut). The Handler shows it
// indented under the stage's own lines; a line that is nroot's own
// ("[stage] ..."), printed by a child nroot, stays as it is. Flush logs
// a last line that has no newline. A nil log discards everything.
func Output(log *slog.Logger, stage string) *OutputWriter {
	return &OutputWriter{log: log, stage: stage}
}

// OutputWriter is Output's writer; it is safe for concurrent use.
type OutputWriter struct {
	mu    sync.Mutex
	log   *slog.Logger
	stage string
	buf   []byte
}

func (w *OutputWriter) Write(p []byte) (int, error) {
	if w == nil || w.log == nil {
		return len(p), nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) < MaxLine {
				break
			}
			i = MaxLine
			w.emit(w.buf[:i])
			w.buf = w.buf[i:]
			continue
		}
		if i > MaxLine {
			i = MaxLine
			w.emit(w.buf[:i])
			w.buf = w.buf[i:]
			continue
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a long burst's array go
	}
	return len(p), nil
}

// Flush logs what is left without a newline.
func (w *OutputWriter) Flush() {
	if w == nil || w.log == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

func (w *OutputWriter) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	w.log.LogAttrs(context.Background(), slog.LevelInfo, string(line), slog.String("stage", w.stage), slog.Bool(outputKey, true))
}
