package hook

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// input is a host file a special hook reads (tar-in's tarball, upload's
// file), opened so that its context can stop it at any point, even when
// it is a FIFO nobody writes: opening never blocks (O_NONBLOCK), so the
// caller can look at what it opened first; a FIFO is waited on, at the
// first read, in Go's poller until a writer comes; and the context's end
// sets a past read deadline, which ends a wait or a read at once. A
// regular file's reads do not block; Read checks the context between
// them.
type input struct {
	*os.File
	ctx     context.Context
	stop    func() bool
	waiting bool // a FIFO no data has been read from yet
}

func openInput(ctx context.Context, name string) (*input, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	in := &input{File: f, ctx: ctx, waiting: st.Mode()&os.ModeNamedPipe != 0}
	in.stop = context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	return in, nil
}

// waitWriter waits for a FIFO to have data, or a writer that came and
// went. Opened without blocking and before any writer, a FIFO reads as
// empty (EOF), where a blocking open would have waited; poll, unlike
// read, tells the two apart.
func (in *input) waitWriter() error {
	rc, err := in.File.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err != nil && err != unix.EINTR {
			perr = err
			return true
		}
		return n > 0 // else wait in the poller for the next event
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		if cerr := in.ctx.Err(); cerr != nil {
			err = cerr
		}
		return fmt.Errorf("%s: waiting for a writer: %w", in.Name(), err)
	}
	return nil
}

func (in *input) Read(p []byte) (int, error) {
	if err := in.ctx.Err(); err != nil {
		return 0, err
	}
	if in.waiting {
		if err := in.waitWriter(); err != nil {
			return 0, err
		}
		in.waiting = false
	}
	n, err := in.File.Read(p)
	if err != nil && in.ctx.Err() != nil {
		err = in.ctx.Err() // the deadline set at the context's end
	}
	return n, err
}

func (in *input) Close() error {
	in.stop()
	return in.File.Close()
}

// ctxReader and ctxWriter stop a stream at its context's end: they check
// it before each read or write.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
