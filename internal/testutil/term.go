package testutil

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Term is a program running on a pseudo-terminal of its own, as a user
// would see it: its screen, every screen it showed and when, and keys
// typed at it. It answers the terminal queries a real terminal answers
// (background colour, cursor position).
type Term struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	scr    *Screen
	frames []Frame
	send   func(string) error
	done   chan struct{}
}

// Frame is a screen as it was at a moment.
type Frame struct {
	At   time.Time
	Text string
}

// StartOnTerminal starts cmd with its standard input and output on a new
// pseudo-terminal of cols×rows (standard error is left as cmd has it).
func StartOnTerminal(t testing.TB, cmd *exec.Cmd, cols, rows int) *Term {
	t.Helper()
	master, slave, err := openPty(cols, rows)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	cmd.Stdin, cmd.Stdout = slave, slave
	if err := cmd.Start(); err != nil {
		master.Close()
		slave.Close()
		t.Fatal(err)
	}
	slave.Close()
	tm := &Term{cmd: cmd, scr: NewScreen(cols, rows), done: make(chan struct{})}
	tm.send = func(s string) error { _, err := master.Write([]byte(s)); return err }
	go func() {
		defer close(tm.done)
		defer master.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				tm.take(buf[:n])
			}
			if err != nil {
				return // EIO once the program is gone
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		<-tm.done
	})
	return tm
}

// take draws what the program wrote and answers its queries.
func (tm *Term) take(b []byte) {
	if bytes.Contains(b, []byte("\x1b]11;?")) {
		_ = tm.send("\x1b]11;rgb:0000/0000/0000\x1b\\")
	}
	if bytes.Contains(b, []byte("\x1b[6n")) {
		_ = tm.send("\x1b[1;1R")
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	_, _ = tm.scr.Write(b)
	text := tm.scr.String()
	if len(tm.frames) == 0 || tm.frames[len(tm.frames)-1].Text != text {
		tm.frames = append(tm.frames, Frame{At: time.Now(), Text: text})
	}
}

// Screen returns the screen now.
func (tm *Term) Screen() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.scr.String()
}

// Frames returns every screen shown so far, in order.
func (tm *Term) Frames() []Frame {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]Frame(nil), tm.frames...)
}

// Type sends keys as if typed.
func (tm *Term) Type(keys string) error { return tm.send(keys) }

// WaitFor waits up to timeout for the screen to show every one of texts.
func (tm *Term) WaitFor(timeout time.Duration, texts ...string) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s := tm.Screen()
		all := true
		for _, x := range texts {
			all = all && strings.Contains(s, x)
		}
		if all {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Wait waits up to timeout for the program to exit and returns its error.
func (tm *Term) Wait(timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- tm.cmd.Wait() }()
	select {
	case err := <-errc:
		<-tm.done
		return err
	case <-time.After(timeout):
		_ = tm.cmd.Process.Kill()
		return <-errc
	}
}
