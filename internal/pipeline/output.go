package pipeline

import (
	"bufio"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Output is the buffered file the views write to (standard output). It
// keeps the first write error: once the reader is gone (EPIPE) the run
// ends quietly.
type Output struct {
	*bufio.Writer // what the views write to
	w             errWriter
}

// NewOutput buffers size bytes of f; a pipe's own buffer is enlarged to
// 1 MiB, best effort.
func NewOutput(f *os.File, size int) *Output {
	growPipe(f)
	o := &Output{w: errWriter{w: f}}
	o.Writer = bufio.NewWriterSize(&o.w, size)
	return o
}

// Err returns the first write error, if any.
func (o *Output) Err() error { return o.w.err }

// growPipe enlarges f's buffer to 1 MiB when f is a pipe, best effort.
func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
			// A 64 KiB pipe would take several reader wakeups per 256 KiB flush.
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
		}
	})
}

// errWriter remembers the first write error (EPIPE from a closed pipe).
type errWriter struct {
	w   io.Writer
	err error
}

// Write writes b unless an earlier write failed, and keeps the first error.
func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	if err != nil {
		e.err = err
	}
	return n, err
}
