package main

// Faults: signals, a reader that goes away (head), a closed stdout, a full
// disk while recording, two tracers at once, no tracefs. Each run must end
// cleanly with its BPF program, link and maps gone, and what was recorded
// before the disk filled must replay.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// ftBPFObjects are the BPF object IDs a process holds, from /proc/PID/fdinfo.
type ftBPFObjects struct{ progs, links, maps []uint32 }

func ftBPFObjectsOf(t *testing.T, pid int) ftBPFObjects {
	t.Helper()
	var o ftBPFObjects
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil || seen[k+v] {
				continue
			}
			seen[k+v] = true
			switch k {
			case "prog_id":
				o.progs = append(o.progs, uint32(id))
			case "link_id":
				o.links = append(o.links, uint32(id))
			case "map_id":
				o.maps = append(o.maps, uint32(id))
			}
		}
	}
	if len(o.progs) == 0 || len(o.links) == 0 {
		t.Fatalf("process %d holds no BPF program or link (fdinfo)", pid)
	}
	return o
}

// ftAssertGone checks that none of o's objects exists any more (the kernel
// frees programs after an RCU grace period: wait up to 3 s).
func ftAssertGone(t *testing.T, what string, o ftBPFObjects) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var left []string
		for _, id := range o.progs {
			if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
				p.Close()
				left = append(left, fmt.Sprintf("prog %d", id))
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("prog %d: %v", id, err)
			}
		}
		for _, id := range o.links {
			if l, err := link.NewFromID(link.ID(id)); err == nil {
				l.Close()
				left = append(left, fmt.Sprintf("link %d", id))
			}
		}
		for _, id := range o.maps {
			if m, err := ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
				m.Close()
				left = append(left, fmt.Sprintf("map %d", id))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: after exit still loaded: %s", what, strings.Join(left, ", "))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ftWaitExit waits up to 10 s for cmd and returns its exit status.
func ftWaitExit(t *testing.T, wait func() error) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Errorf("killed by %v", ws.Signal())
				return -1
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit within 10 s")
	}
	return -1
}

func ftCountPort(out []byte, port int) int {
	n := 0
	for _, l := range ftParse(nil, out) {
		if l.Sport == port || l.Dport == port {
			n++
		}
	}
	return n
}

// ftOneConn makes one loopback connection (client closes first) and returns
// its listener's port: 12 transitions.
func ftOneConn(t *testing.T) int {
	c, s, port := ftPair(t)
	c.Close()
	buf := make([]byte, 8)
	s.Read(buf)
	s.Close()
	time.Sleep(300 * time.Millisecond)
	return port
}

// TestFaultSignals: SIGINT and SIGTERM end the trace with status 0, the
// summary, every transition seen, and nothing left loaded.
func TestFaultSignals(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(binary, "--json")
		out, errb, wait := testutil.StartTracer(t, cmd)
		objs := ftBPFObjectsOf(t, cmd.Process.Pid)
		port := ftOneConn(t)
		cmd.Process.Signal(sig)
		if st := ftWaitExit(t, wait); st != 0 {
			t.Errorf("%v: exit status %d: %s", sig, st, errb)
		}
		if n := ftCountPort(out.Bytes(), port); n != 12 {
			t.Errorf("%v: %d transitions of the connection, want 12", sig, n)
		}
		if !bytes.Contains(out.Bytes(), []byte(`{"type":"summary"`)) {
			t.Errorf("%v: no summary", sig)
		}
		ftAssertGone(t, sig.String(), objs)
	}
}

// TestFaultHead pipes the output into head -n 1: when head has exited, the
// next write gets EPIPE (SIGPIPE is caught) and tcptrace ends quietly with
// status 0. (Like any writer, it notices only when it next writes.)
func TestFaultHead(t *testing.T) {
	testutil.RequirePrivileged(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	head := exec.Command("head", "-n", "1")
	head.Stdin = pr
	var headOut bytes.Buffer
	head.Stdout = &headOut
	if err := head.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	cmd := exec.Command(binary, "--json")
	cmd.Stdout = pw
	_, errb, wait := testutil.StartTracer(t, cmd)
	pw.Close()
	objs := ftBPFObjectsOf(t, cmd.Process.Pid)
	ftOneConn(t)
	head.Wait()
	ftOneConn(t) // events after head left: the write that fails
	if st := ftWaitExit(t, wait); st != 0 {
		t.Errorf("exit status %d after head left: %s", st, errb)
	}
	if strings.Count(headOut.String(), "\n") != 1 {
		t.Errorf("head got %q", headOut.String())
	}
	if strings.Contains(errb.String(), "panic") || strings.Contains(errb.String(), "broken pipe") {
		t.Errorf("noisy exit: %s", errb)
	}
	ftAssertGone(t, "head", objs)
}

// TestFaultClosedStdout starts tcptrace with file descriptor 1 closed
// (`tcptrace >&-`). The Go runtime opens /dev/null on a closed 0, 1 or 2 at
// start, so no BPF object lands on fd 1 and the output goes nowhere: it
// traces, stops on SIGINT with status 0 and detaches.
func TestFaultClosedStdout(t *testing.T) {
	testutil.RequirePrivileged(t)
	cmd := exec.Command("sh", "-c", `exec "$0" --json >&-`, binary)
	_, errb, wait := testutil.StartTracer(t, cmd)
	objs := ftBPFObjectsOf(t, cmd.Process.Pid)
	fd1, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", cmd.Process.Pid))
	if strings.Contains(fd1, "bpf") || strings.Contains(fd1, "anon_inode") {
		t.Errorf("fd 1 of a tcptrace started with stdout closed is %s", fd1)
	}
	ftOneConn(t)
	cmd.Process.Signal(syscall.SIGINT)
	st := ftWaitExit(t, wait)
	msg := strings.TrimSpace(errb.String())
	if strings.Contains(msg, "panic") {
		t.Fatalf("panic: %s", msg)
	}
	if st != 0 {
		t.Errorf("exit status %d: %s", st, msg)
	}
	t.Logf("closed stdout: fd 1 is %s; exit %d", fd1, st)
	ftAssertGone(t, "closed stdout", objs)
}

// TestFaultDiskFull records onto a 256 KiB tmpfs until it is full: tcptrace
// must stop with an error naming the full disk (status 1), detach, and leave
// a capture whose complete records replay (cleanly, or with a cut-short note
// and status 2).
func TestFaultDiskFull(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tcptrace-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	capture := filepath.Join(dir, "full.tcpt")
	// --port: only the workload, so the file fills at a known pace.
	c0, s0, port := ftPair(t)
	c0.Close()
	s0.Close()
	cmd := exec.Command(binary, "--json", "--port", strconv.Itoa(port), "-w", capture)
	out, errb, wait := testutil.StartTracer(t, cmd)
	objs := ftBPFObjectsOf(t, cmd.Process.Pid)
	ln, err := ftListen(port)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	exited := make(chan int, 1)
	go func() { exited <- ftWaitExit(t, wait) }()
	var st int
	deadline := time.Now().Add(60 * time.Second)
loop:
	for {
		select {
		case st = <-exited:
			break loop
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("still recording after 60 s on a 256 KiB tmpfs: %s", errb)
		}
		ftChurn(ln, 50)
	}
	msg := strings.TrimSpace(errb.String())
	if st != 1 || !strings.Contains(msg, "no space left on device") {
		t.Errorf("disk full: exit %d, want 1 with an error naming ENOSPC: %s", st, msg)
	}
	ftAssertGone(t, "disk full", objs)
	fi, err := os.Stat(capture)
	if err != nil {
		t.Fatal(err)
	}
	live := ftCountPort(out.Bytes(), port)
	replay := exec.Command(binary, "-r", capture, "--json", "--no-summary")
	var rout, rerr bytes.Buffer
	replay.Stdout, replay.Stderr = &rout, &rerr
	err = replay.Run()
	rst := 0
	if ee, ok := err.(*exec.ExitError); ok {
		rst = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	replayed := ftCountPort(rout.Bytes(), port)
	t.Logf("capture %d bytes; live showed %d transitions, replay %d (exit %d: %s)", fi.Size(), live, replayed, rst, strings.TrimSpace(rerr.String()))
	switch {
	case rst == 0:
	case rst == 2 && strings.Contains(rerr.String(), "cut short"):
	default:
		t.Errorf("replay of the capture cut by ENOSPC: exit %d: %s", rst, rerr.String())
	}
	if replayed < 1000 {
		t.Errorf("replay shows only %d transitions of %d seen live: the recorded part was lost", replayed, live)
	}
}

// TestFaultTwoTracers runs two tcptrace at once: both attach, both see
// every transition of one connection, both exit cleanly and detach.
func TestFaultTwoTracers(t *testing.T) {
	testutil.RequirePrivileged(t)
	a := exec.Command(binary, "--json")
	aout, aerr, await := testutil.StartTracer(t, a)
	b := exec.Command(binary, "--json")
	bout, berr, bwait := testutil.StartTracer(t, b)
	ao, bo := ftBPFObjectsOf(t, a.Process.Pid), ftBPFObjectsOf(t, b.Process.Pid)
	if ao.progs[0] == bo.progs[0] {
		t.Fatalf("both tracers share program %d", ao.progs[0])
	}
	port := ftOneConn(t)
	a.Process.Signal(syscall.SIGINT)
	if st := ftWaitExit(t, await); st != 0 {
		t.Errorf("first: exit %d: %s", st, aerr)
	}
	ftAssertGone(t, "first", ao)
	// The second still traces after the first left.
	port2 := ftOneConn(t)
	b.Process.Signal(syscall.SIGINT)
	if st := ftWaitExit(t, bwait); st != 0 {
		t.Errorf("second: exit %d: %s", st, berr)
	}
	ftAssertGone(t, "second", bo)
	if n := ftCountPort(aout.Bytes(), port); n != 12 {
		t.Errorf("first tracer: %d transitions, want 12", n)
	}
	if n := ftCountPort(bout.Bytes(), port); n != 12 {
		t.Errorf("second tracer: %d transitions, want 12", n)
	}
	if n := ftCountPort(bout.Bytes(), port2); n != 12 {
		t.Errorf("second tracer after the first exited: %d transitions, want 12", n)
	}
}

// TestFaultNoTracefs runs tcptrace in a mount namespace where tracefs and
// debugfs are hidden under empty tmpfs: tp_btf attaches through BTF, so it
// must trace as usual.
func TestFaultNoTracefs(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) not installed: %v", err)
	}
	script := `for d in /sys/kernel/tracing /sys/kernel/debug; do [ -d $d ] && mount -t tmpfs none $d; done; ` +
		`[ -e /sys/kernel/tracing/trace_pipe ] && { echo "tracefs still visible" >&2; exit 9; }; exec "$0" --json`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, binary)
	out, errb, wait := testutil.StartTracer(t, cmd)
	port := ftOneConn(t)
	cmd.Process.Signal(syscall.SIGINT)
	if st := ftWaitExit(t, wait); st != 0 {
		t.Fatalf("exit %d: %s", st, errb)
	}
	if n := ftCountPort(out.Bytes(), port); n != 12 {
		t.Errorf("without tracefs: %d transitions, want 12", n)
	}
}

// TestFaultTooOldKernel: on a kernel older than 5.12 tcptrace refuses to
// start with one line naming the version (uname is faked with setarch
// --uname-2.6, which reports 2.6.x).
func TestFaultTooOldKernel(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("setarch"); err != nil {
		t.Fatalf("setarch (util-linux) not installed: %v", err)
	}
	cmd := exec.Command("setarch", "x86_64", "--uname-2.6", binary, "--duration", "1s")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	msg := strings.TrimSpace(errb.String())
	if !ok || ee.ExitCode() != 1 || !strings.Contains(msg, "is too old: tcptrace needs Linux 5.12 or newer") || strings.Count(msg, "\n") != 0 {
		t.Errorf("on a 2.6 uname: %v: %q", err, msg)
	}
}

// ftListen listens on 127.0.0.1:port (plain TCP) and serves connections by
// reading to EOF and closing.
func ftListen(port int) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	testutil.Drain(ln)
	return ln, nil
}

// ftChurn makes n connections to ln that the client aborts (no TIME_WAIT).
func ftChurn(ln net.Listener, n int) {
	var d net.Dialer
	d.SetMultipathTCP(false)
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp4", ln.Addr().String())
		if err != nil {
			continue
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
}
