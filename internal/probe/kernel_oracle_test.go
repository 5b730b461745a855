package probe_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// bpftraceOracle runs bpftrace on tracepoint:sock:inet_sock_set_state for
// one port: an independent witness of the kernel's transitions.
type bpftraceOracle struct {
	cmd   *exec.Cmd
	lines chan string
}

func startBpftrace(t testing.TB, bin string, port int) *bpftraceOracle {
	t.Helper()
	prog := fmt.Sprintf(`BEGIN { printf("READY\n"); }
tracepoint:sock:inet_sock_set_state /args->protocol == 6 && (args->sport == %d || args->dport == %d)/ {
	printf("T %%d %%d %%d %%d %%d\n", args->family, args->sport, args->dport, args->oldstate, args->newstate);
}`, port, port)
	cmd := exec.Command(bin, "-B", "line", "-e", prog)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := &bpftraceOracle{cmd: cmd, lines: make(chan string, 1024)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			o.lines <- sc.Text()
		}
		close(o.lines)
	}()
	// BEGIN runs once every probe is attached.
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-o.lines:
			if !ok {
				t.Fatalf("bpftrace exited: %s", stderr.String())
			}
			if l == "READY" {
				return o
			}
		case <-deadline:
			t.Fatalf("bpftrace did not start: %s", stderr.String())
		}
	}
}

// stop interrupts bpftrace and returns its transitions as
// "family sport dport OLD>NEW".
func (o *bpftraceOracle) stop(t testing.TB) []string {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // let the last lines out
	_ = o.cmd.Process.Signal(syscall.SIGINT)
	var got []string
	for l := range o.lines {
		var fam, sport, dport, old, new int
		if _, err := fmt.Sscanf(l, "T %d %d %d %d %d", &fam, &sport, &dport, &old, &new); err == nil {
			got = append(got, fmt.Sprintf("%d %d %d %v>%v", fam, sport, dport, events.State(old), events.State(new)))
		}
	}
	_ = o.cmd.Wait()
	return got
}

// TestKernelBpftraceOracle runs each shape under tcptrace and bpftrace at
// once and compares the transition multisets (bpftrace has no cookies).
func TestKernelBpftraceOracle(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin, err := exec.LookPath("bpftrace")
	if err != nil {
		t.Skip("bpftrace not installed")
	}
	if _, err := os.Stat("/sys/kernel/tracing/events/sock/inet_sock_set_state"); err != nil {
		_ = syscall.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, "")
	}
	for _, name := range []string{"client_close", "linger_reset", "refused", "ipv6"} {
		t.Run(name, func(t *testing.T) {
			var o *bpftraceOracle
			s := runShapeWith(t, name, func(port int) { o = startBpftrace(t, bin, port) })
			want := o.stop(t)
			var got []string
			for _, e := range s.Events {
				if e.Kind == events.KindTransition {
					got = append(got, fmt.Sprintf("%d %d %d %v>%v", e.Family, e.Sport, e.Dport, e.Old, e.New))
				}
			}
			if len(want) == 0 {
				t.Fatal("bpftrace saw nothing")
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("tcptrace and bpftrace disagree\ntcptrace:\n  %s\nbpftrace:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}
