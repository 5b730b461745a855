package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
)

// readerPortEnv makes this test binary the reader variant's process.
const readerPortEnv = "TCPTRACE_BENCH_READER_PORT"

// readerLines is how many events the reader process prints, one line
// each, so that its readiness shows; it only counts the rest.
const readerLines = 64

// readerSummary is the reader process's last line: transitions, ring and
// recursion losses, timewait steps.
const readerSummary = "events %d ring %d recursion %d timewait %d"

// readerNoTimeWaitEnv=1 makes the reader process trace without the timewait
// (timer) programs, to compare their cost.
const readerNoTimeWaitEnv = "TCPTRACE_BENCH_NO_TIMEWAIT"

func TestMain(m *testing.M) {
	if port := os.Getenv(readerPortEnv); port != "" {
		os.Exit(readerMain(port))
	}
	os.Exit(m.Run())
}

// readerMain traces the port as tcptrace does (its probe and ring reader)
// but only decodes the records. On SIGUSR1 it prints "mark N", the
// events so far; on SIGINT readerSummary, and returns.
func readerMain(port string) int {
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", readerPortEnv, err)
		return 2
	}
	p, err := probe.Open(probe.Options{Filter: probe.Filter{Port: uint16(n)}, NoTimeWait: os.Getenv(readerNoTimeWaitEnv) == "1"})
	if err != nil {
		fmt.Fprintf(os.Stderr, "opening the probe: %+v\n", err)
		return 1
	}
	defer p.Close()
	var count, timeWait atomic.Uint64
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGUSR1)
	go func() {
		for s := range sig {
			if s == syscall.SIGUSR1 {
				fmt.Printf("mark %d\n", count.Load())
				continue
			}
			_ = p.Stop()
			return
		}
	}()
	var ev events.Event
	for {
		err := p.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "reading the ring: %v\n", err)
			return 1
		}
		if ev.Kind == events.KindTimeWait {
			timeWait.Add(1) // the expected events are transitions
			continue
		}
		if count.Add(1) <= readerLines {
			fmt.Println("event")
		}
	}
	l, err := p.Losses()
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading the loss counters: %v\n", err)
		return 1
	}
	fmt.Printf(readerSummary+"\n", count.Load(), l.Ring, l.Recursion, timeWait.Load())
	return 0
}

// readerTracer runs the reader process: tcptrace's kernel side and ring
// reader with almost none of its userspace.
type readerTracer struct {
	dir        string
	noTimeWait bool   // without the timer programs
	mark       uint64 // events the process had read at the ready point
	ourProcess
}

func (t *readerTracer) start(b *testing.B, e *churnEnv) {
	t.proc.name = "reader"
	t.proc.env = []string{readerPortEnv + "=" + strconv.Itoa(int(e.port))}
	if t.noTimeWait {
		t.proc.env = append(t.proc.env, readerNoTimeWaitEnv+"=1")
	}
	t.launch(b, e, t.dir, os.Args[0], "-test.run", "^$")
	// The events before the workload, from the process itself: it
	// prints only the first few.
	_ = t.proc.cmd.Process.Signal(syscall.SIGUSR1)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		raw, _ := os.ReadFile(t.proc.out)
		if i := bytes.Index(raw, []byte("mark ")); i >= 0 && bytes.IndexByte(raw[i:], '\n') > 0 {
			if _, err := fmt.Sscanf(string(raw[i:]), "mark %d", &t.mark); err != nil {
				b.Fatalf("reader: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("reader: no mark line 5s after SIGUSR1: %s", t.proc.stderr.String())
		}
	}
}

func (t *readerTracer) stop(b *testing.B) tracerResult {
	r := t.end(b)
	raw, _ := os.ReadFile(t.proc.out)
	_ = os.Remove(t.proc.out)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte{'\n'})
	var total, timeWait uint64
	if _, err := fmt.Sscanf(string(lines[len(lines)-1]), readerSummary, &total, &r.ring, &r.recursion, &timeWait); err != nil {
		b.Fatalf("reader: no summary line (%v): %q", err, lines[len(lines)-1])
	}
	r.events = total - t.mark
	return r
}
