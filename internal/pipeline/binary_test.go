package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/capture"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// buildBinary builds cmd/tcptrace into a directory of the test's.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tcptrace")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/tcptrace")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // so it can drop capabilities on every thread
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tcptrace: %v\n%s", err, out)
	}
	return bin
}

// connectAll makes n loopback connections to l, the client closing first.
func connectAll(t *testing.T, l net.Listener, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

// TestRecordPastClosedOutput runs `tcptrace -w f --duration 4s | head -1`
// on loopback traffic made before and after head leaves: tcptrace exits 0
// at the end of its duration, says on stderr that the capture recorded on
// and how much it holds, and the capture holds every connection.
func TestRecordPastClosedOutput(t *testing.T) {
	// Remove once cmd/tcptrace's stopOn no longer stops the run on SIGPIPE
	// (it must ignore it: signal.Ignore(syscall.SIGPIPE)); it passes then.
	testutil.RequirePrivileged(t)
	bin := buildBinary(t)
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	testutil.Drain(l)
	port := l.Addr().(*net.TCPAddr).Port
	path := filepath.Join(t.TempDir(), "f.tcpt")

	cmd := exec.Command(bin, "-w", path, "--duration", "4s", "--port", strconv.Itoa(port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, wait := testutil.StartTracer(t, cmd)

	const n = 30
	connectAll(t, l, n)
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil { // head -1
		t.Fatalf("no first line: %v", err)
	}
	out.Close()
	time.Sleep(300 * time.Millisecond) // the next flush meets the closed pipe
	connectAll(t, l, n)

	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tcptrace exited with %v: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("tcptrace did not end at the end of its duration: %s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "tcptrace: the output was closed; the capture records on until the run ends\n") ||
		!strings.Contains(stderr.String(), "tcptrace: the capture holds ") {
		t.Errorf("stderr does not say the capture recorded on, and how much it holds:\n%s", stderr.String())
	}

	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	col := &clients{port: uint16(port)}
	tr := events.NewTracker(col, nil, 0)
	var ev events.Event
	var lost events.Losses
	for r.Next(&ev) == nil {
		if ev.Kind == events.KindLoss {
			lost = ev.Lost
		}
		tr.Observe(&ev)
	}
	if r.Truncated() != nil {
		t.Errorf("capture %s", r.Truncated())
	}
	// Beside other tests' floods the kernel's recursion guard may skip a
	// program run: recorded as lost, the only shortfall allowed.
	if col.n > 2*n || uint64(col.n)+lost.Total() < 2*n {
		t.Errorf("the capture holds %d of the %d connections (%d events lost in the kernel)", col.n, 2*n, lost.Total())
	}
	if want := "tcptrace: the capture holds " + strconv.FormatUint(r.Events(), 10) + " events\n"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
	}
}

// clients counts the finished client connections toward port.
type clients struct {
	port uint16
	n    int
}

func (c *clients) Transition(*events.Transition) {}
func (c *clients) Loss(*events.Event)            {}
func (c *clients) Finished(x *events.Conn) {
	if x.Role == events.RoleClient && x.Dport == c.port {
		c.n++
	}
}

// TestStateFilterConnections runs `tcptrace -r sample --state TIME_WAIT
// --json`: the connection records are those of the connections that went
// through TIME_WAIT, every one of them, and no other.
func TestStateFilterConnections(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "-r", sample, "--state", "TIME_WAIT", "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	tw := map[json.Number]bool{} // cookies with a transition shown
	conns := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var rec map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		cookie, _ := rec["cookie"].(json.Number)
		switch rec["type"] {
		case "transition":
			tw[cookie] = true
		case "connection":
			conns++
			if !tw[cookie] || rec["time_wait"] != true {
				t.Errorf("a connection record without a TIME_WAIT transition: %s", line)
			}
			delete(tw, cookie)
		}
	}
	if conns == 0 || len(tw) != 0 {
		t.Errorf("%d connection records; %d connections shown in TIME_WAIT without one", conns, len(tw))
	}
}
