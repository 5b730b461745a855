package testutil

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// RunOnTerminal runs cmd with its standard output on a new pseudo-terminal
// of cols columns (standard input and error are left as cmd has them) and
// returns what it wrote there, with the terminal's CRLF line ends made LF.
// It is for tests of what a user sees at a terminal: tcptrace lays out,
// cuts and colours only when its output is one.
func RunOnTerminal(t testing.TB, cmd *exec.Cmd, cols int) ([]byte, error) {
	t.Helper()
	master, slave, err := openPty(cols, 50)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	defer master.Close()
	cmd.Stdout = slave
	if err := cmd.Start(); err != nil {
		slave.Close()
		return nil, err
	}
	slave.Close() // the child holds it: reads end (EIO) when it exits
	var out bytes.Buffer
	_, _ = io.Copy(&out, master) // EIO once the last writer is gone
	err = cmd.Wait()
	return bytes.ReplaceAll(out.Bytes(), []byte("\r\n"), []byte("\n")), err
}

// openPty opens a pseudo-terminal pair (/dev/ptmx), its window cols wide
// and rows high.
func openPty(cols, rows int) (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil { // unlock
		m.Close()
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("naming the pty: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	ws := unix.Winsize{Row: uint16(rows), Col: uint16(cols)}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &ws); err != nil {
		m.Close()
		s.Close()
		return nil, nil, fmt.Errorf("sizing the pty: %w", err)
	}
	// Raw output: no CR inserted before LF, no tab expansion.
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err == nil {
		tio.Oflag &^= unix.OPOST
		_ = unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio)
	}
	return m, s, nil
}
