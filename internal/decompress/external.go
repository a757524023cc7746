package decompress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// xzProgram is the host's xz, when it has one and NROOT_XZ is not "go".
// liblzma decodes about twice as fast as the Go decoder, and in its own
// process it overlaps with whatever reads its output; Docker reads xz
// image layers the same way.
var xzProgram = sync.OnceValue(func() string {
	if os.Getenv("NROOT_XZ") == "go" {
		return ""
	}
	return hostProgram("xz", "XZ Utils")
})

// lzopProgram is the host's lzop, when it has one.
var lzopProgram = sync.OnceValue(func() string { return hostProgram("lzop", "lzop") })

// hostProgram finds name on PATH, and only if "name --version" says it is
// the program nroot expects (says): busybox's xz applet, say, has no
// --decompress, and the Go decoder is used instead.
func hostProgram(name, says string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), says) {
		return ""
	}
	return p
}

// NewStreamReader is NewReader for large streams (package indices, .deb
// data archives): xz is decoded by the host's xz program when there is
// one, by the Go decoder otherwise. Set NROOT_XZ=go to always use Go.
// Closing the result before its end stops the program.
func NewStreamReader(f Format, r io.Reader) (io.ReadCloser, error) {
	if f != XZ || xzProgram() == "" {
		return NewReader(f, r)
	}
	return startProgram(xzProgram(), append(slices.Clip(xzDecode), xzMemLimit), r)
}

// xzMemLimit caps what a stream may make the xz program allocate, as
// MaxDict caps the Go decoder.
const xzMemLimit = "--memlimit-decompress=1GiB"

// xzDecode are the xz program's arguments to decode stdin to stdout.
var xzDecode = []string{"--decompress", "--stdout", "--quiet"}

// NewParallelXZReader is NewStreamReader for one large xz stream read on
// its own, such as an initramfs segment: the xz program may decode its
// blocks on every CPU (xz 5.4 and later do, when the encoder recorded
// the blocks' sizes, as multi-threaded xz does). As for zstd, a stream
// asking for more than 1 GiB to decode is refused.
func NewParallelXZReader(r io.Reader) (io.ReadCloser, error) {
	if xzProgram() == "" {
		return NewReader(XZ, r)
	}
	return startProgram(xzProgram(), append(slices.Clip(xzDecode), "--threads=0", xzMemLimit), r)
}

// program is a decompressor running in a child process.
type program struct {
	cmd    *exec.Cmd
	in     *inputError
	out    io.ReadCloser
	stderr bytes.Buffer
	done   bool
	err    error
}

func startProgram(path string, args []string, r io.Reader) (*program, error) {
	p := &program{cmd: exec.Command(path, args...), in: &inputError{r: r}}
	p.cmd.Stdin = p.in
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.out = out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	return p, nil
}

func (p *program) Read(b []byte) (int, error) {
	if p.done {
		return 0, p.err
	}
	n, err := p.out.Read(b)
	if err == io.EOF {
		p.finish()
		if p.err != io.EOF {
			return n, p.err
		}
	}
	return n, err
}

// finish waits for the program and records how the stream ended: io.EOF
// if it exited cleanly, its complaint otherwise.
func (p *program) finish() {
	p.done = true
	p.err = io.EOF
	err := p.cmd.Wait()
	if ierr := p.in.get(); ierr != nil {
		// The input failed (a stream walker refused it): that is the
		// cause, whatever the program made of the cut stream.
		p.err = ierr
		return
	}
	if err != nil {
		var ee *exec.ExitError
		// The program names itself on each line of its complaint.
		msg := strings.ReplaceAll(strings.TrimSpace(p.stderr.String()), "\n", "; ")
		if errors.As(err, &ee) && msg != "" {
			if !strings.HasPrefix(msg, p.cmd.Path+":") {
				msg = p.cmd.Path + ": " + msg
			}
			p.err = errors.New(msg)
		} else {
			p.err = fmt.Errorf("%s: %w", p.cmd.Path, err)
		}
	}
}

// Close stops the program if the stream was not read to its end.
func (p *program) Close() error {
	if p.done {
		return nil
	}
	p.cmd.Process.Kill()
	p.out.Close()
	p.cmd.Wait()
	p.done, p.err = true, errors.New("decompressor closed")
	return nil
}

// inputError keeps the first error reading a program's input, which
// exec's copying goroutine would otherwise lose behind the program's exit
// status.
type inputError struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (e *inputError) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.mu.Lock()
		if e.err == nil {
			e.err = err
		}
		e.mu.Unlock()
	}
	return n, err
}

func (e *inputError) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}
