package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// tracerProcess is a tracer run as a subprocess with its output in a file:
// the tcptrace binary, the reader, or bpftrace.
type tracerProcess struct {
	name    string   // in messages
	env     []string // added to this process's environment
	cmd     *exec.Cmd
	out     string
	stderr  bytes.Buffer
	exited  chan struct{}
	waitErr error
	cpu0    time.Duration // its CPU at the ready point: its start-up
	exit    time.Duration // its CPU from the drained point to its exit: the exit summary and report
	lines0  uint64        // output lines at the ready point
}

// start runs bin with args, its output in a new file of dir.
func (p *tracerProcess) start(b *testing.B, dir, bin string, args ...string) {
	p.out = filepath.Join(dir, fmt.Sprintf("%s-%d.out", p.name, time.Now().UnixNano()))
	f, err := os.Create(p.out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	p.stderr.Reset()
	p.cmd = exec.Command(bin, args...)
	if p.env != nil {
		p.cmd.Env = append(os.Environ(), p.env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = f, &p.stderr
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("starting %s: %v", p.name, err)
	}
	p.exited = make(chan struct{})
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
}

// ready waits, up to limit, until loaded reports its program loaded and
// then until probe connections of e show as more than minLines lines of
// output; it then notes the ready point.
func (p *tracerProcess) ready(b *testing.B, e *churnEnv, limit time.Duration, loaded func() bool, minLines uint64) {
	probeEnv := *e
	probeEnv.workers, probeEnv.runFor = 1, 20*time.Millisecond
	isLoaded := false
	for deadline := time.Now().Add(limit); !isLoaded || countLines(p.out) <= minLines; time.Sleep(50 * time.Millisecond) {
		select {
		case <-p.exited:
			b.Fatalf("%s exited early (%v): %s", p.name, p.waitErr, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = p.cmd.Process.Kill()
			<-p.exited
			b.Fatalf("%s not ready after %v (program found: %v, output lines: %d): %s",
				p.name, limit, isLoaded, countLines(p.out), p.stderr.String())
		}
		if !isLoaded {
			isLoaded = loaded()
		} else {
			probeEnv.run(clientClosesFirst)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the probe connections' output settle
	// Then let its start-up finish (loading, the self-test, tcptrace's
	// read of the TIME_WAIT pile): the workload is measured from the
	// first 100 ms in which the tracer used under 5 ms (at most 30 s: a
	// start-up that takes longer is measured with the workload).
	p.cpu0, _ = procCPU(p.cmd.Process.Pid)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		c, _ := procCPU(p.cmd.Process.Pid)
		c, p.cpu0 = c-p.cpu0, c
		if c < 5*time.Millisecond {
			break
		}
	}
	p.lines0 = countLines(p.out)
}

// finish interrupts the process and waits for it. Strict (tcptrace), it
// fails if the process does not exit within 30 s or exits with an error;
// otherwise (the reference) it kills a process still there after 30 s, as
// bpftrace can be when its output is far behind at saturation. It returns
// the process's CPU since the ready point and its peak RSS.
func (p *tracerProcess) finish(b *testing.B, strict bool) (cpu time.Duration, maxRSS int64) {
	// The drained point: the first 100 ms after the workload in which it
	// used under 5 ms (at most 30 s), its backlog written. What it uses
	// after that, at exit (the summary, the report), is once per run, not
	// per event: p.exit.
	drained, _ := procCPU(p.cmd.Process.Pid)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		c, _ := procCPU(p.cmd.Process.Pid)
		c, drained = c-drained, c
		if c < 5*time.Millisecond {
			break
		}
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		if strict {
			b.Fatalf("%s did not exit 30s after SIGINT: %s", p.name, p.stderr.String())
		}
		b.Logf("%s did not exit 30s after SIGINT: killed", p.name)
	}
	if strict && p.waitErr != nil {
		b.Fatalf("%s: %v: %s", p.name, p.waitErr, p.stderr.String())
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		total := time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
		cpu, p.exit = drained-p.cpu0, max(0, total-drained)
		maxRSS = ru.Maxrss << 10
	}
	return cpu, maxRSS
}
