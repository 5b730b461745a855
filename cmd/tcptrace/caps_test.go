package main

// Least privilege: tcptrace traces with only CAP_BPF and CAP_PERFMON, names
// what is missing with less, needs CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH only
// to name the owners of sockets that predate it, and keeps only what it uses
// after attaching.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

var (
	ftStaticOnce sync.Once
	ftStaticBin  string
	ftStaticErr  error
)

// staticBinary builds tcptrace with CGO_ENABLED=0 (dropCapabilities must reach
// every thread: a cgo binary cannot) into a directory anyone may enter, so
// that it can be run as nobody.
func staticBinary(t *testing.T) string {
	t.Helper()
	ftStaticOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tcptrace-caps")
		if err != nil {
			ftStaticErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			ftStaticErr = err
			return
		}
		ftStaticBin = filepath.Join(dir, "tcptrace")
		cmd := exec.Command("go", "build", "-o", ftStaticBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			ftStaticErr = fmt.Errorf("building static tcptrace: %v: %s", err, out)
		}
	})
	if ftStaticErr != nil {
		t.Fatal(ftStaticErr)
	}
	return ftStaticBin
}

// capsTracer runs the binary as nobody with exactly caps (setpriv syntax,
// e.g. "+bpf,+perfmon"), in the ambient set so they survive exec.
func capsCommand(bin, caps string, args ...string) *exec.Cmd {
	set := "-all"
	if caps != "" {
		set += "," + caps
	}
	a := []string{"--reuid", "65534", "--regid", "65534", "--clear-groups",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--", bin}
	return exec.Command("setpriv", append(a, args...)...)
}

type ftLine struct {
	Type   string `json:"type"`
	Cookie uint64 `json:"cookie"`
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	Source string `json:"owner_source"`
	Sport  int    `json:"sport"`
	Dport  int    `json:"dport"`
	Netns  uint64 `json:"netns"`
	Old    string `json:"old"`
	New    string `json:"new"`
}

// ftParse returns the transitions of out in this process's network namespace
// (tests in other packages run in namespaces of their own, whose ports may
// carry the same numbers as ours).
func ftParse(t *testing.T, out []byte) []ftLine {
	if t != nil {
		t.Helper()
	}
	var ns syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &ns); err != nil {
		panic(err)
	}
	var ls []ftLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte(`{"type":"transition"`)) {
			continue
		}
		var l ftLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil && t != nil {
			t.Fatalf("bad JSON %q: %v", sc.Text(), err)
		}
		if l.Netns == ns.Ino {
			ls = append(ls, l)
		}
	}
	return ls
}

// ftPair returns a connected client and server on a fresh plain-TCP
// listener, and the listener's port.
func ftPair(t *testing.T) (c, s net.Conn, port int) {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var d net.Dialer
	d.SetMultipathTCP(false)
	c, err = d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c, s, l.Addr().(*net.TCPAddr).Port
}

// TestLeastPrivilege runs the tracer as nobody with CAP_BPF + CAP_PERFMON
// only: it starts, and a loopback connection made (and closed) while it runs
// is traced with this process as the owner of every transition. With
// CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH added, the owner of a connection that
// predates the tracer is also found (from /proc) for the transition the
// kernel makes in softirq; without them that owner is unknown.
func TestLeastPrivilege(t *testing.T) {
	testutil.RequirePrivileged(t)
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to nobody")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) not installed: %v", err)
	}
	bin := staticBinary(t)
	me := os.Getpid()
	for _, tc := range []struct {
		caps      string
		procOwner bool // pre-existing sockets resolved from /proc
	}{
		{"+bpf,+perfmon", false},
		{"+bpf,+perfmon,+sys_ptrace,+dac_read_search", true},
	} {
		t.Run(tc.caps, func(t *testing.T) {
			// A connection that predates the tracer.
			oldC, oldS, oldPort := ftPair(t)
			defer oldC.Close()
			defer oldS.Close()
			cmd := capsCommand(bin, tc.caps, "--json", "--no-summary", "--poll", "20ms")
			out, errb, wait := testutil.StartTracer(t, cmd)

			// New: client closes first, traced from its first transition.
			c, s, newPort := ftPair(t)
			c.Close()
			buf := make([]byte, 8)
			s.Read(buf)
			s.Close()
			// Old: the client closes; the server's ESTABLISHED→CLOSE_WAIT
			// runs in softirq, where the kernel knows no owner.
			oldC.Close()
			time.Sleep(300 * time.Millisecond)
			oldS.Close()
			time.Sleep(400 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGINT)
			if err := wait(); err != nil {
				t.Fatalf("tcptrace as nobody with %s: %v: %s", tc.caps, err, errb)
			}
			lines := ftParse(t, out.Bytes())
			var newN int
			var oldCW *ftLine
			for i, l := range lines {
				switch {
				case l.Sport == newPort || l.Dport == newPort:
					newN++
					if l.PID != me {
						t.Errorf("new connection: %s→%s owned by %d/%s (%s), want %d", l.Old, l.New, l.PID, l.Comm, l.Source, me)
					}
				case l.Sport == oldPort && l.Old == "ESTABLISHED" && l.New == "CLOSE_WAIT":
					oldCW = &lines[i]
				}
			}
			// Client 5, server 5, listener 2.
			if newN != 12 {
				t.Errorf("new connection: %d transitions, want 12:\n%s", newN, out)
			}
			if oldCW == nil {
				t.Fatalf("pre-existing connection: server's ESTABLISHED→CLOSE_WAIT not traced:\n%s", out)
			}
			if tc.procOwner {
				if oldCW.PID != me || oldCW.Source != "proc" {
					t.Errorf("pre-existing server socket: owner %d (%s), want %d from /proc", oldCW.PID, oldCW.Source, me)
				}
			} else if oldCW.PID == me {
				t.Errorf("pre-existing server socket resolved to %d (%s) without CAP_SYS_PTRACE: the documented limit is wrong", oldCW.PID, oldCW.Source)
			}
		})
	}
}

// TestTooFewCapabilities: with less than CAP_BPF + CAP_PERFMON tcptrace exits
// 1 with one line naming what is missing.
func TestTooFewCapabilities(t *testing.T) {
	testutil.RequirePrivileged(t)
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to nobody")
	}
	bin := staticBinary(t)
	for caps, want := range map[string]string{
		"":                    "missing capabilities CAP_BPF and CAP_PERFMON",
		"+bpf":                "missing capabilities CAP_PERFMON",
		"+perfmon":            "missing capabilities CAP_BPF:",
		"+net_admin,+perfmon": "missing capabilities CAP_BPF:",
	} {
		cmd := capsCommand(bin, caps, "--duration", "1s")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Errorf("caps %q: exit %v, want status 1 (%s)", caps, err, errb.String())
			continue
		}
		msg := strings.TrimSpace(errb.String())
		if !strings.Contains(msg, want) || strings.Count(msg, "\n") != 0 {
			t.Errorf("caps %q: got %q, want one line with %q", caps, msg, want)
		}
	}
}

// ftCapEff reads a task's effective capability set from its status file.
func ftCapEff(t *testing.T, status string) uint64 {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no CapEff in %s", status)
	return 0
}

const ftEnvDropHelper = "TCPTRACE_TEST_DROP_CAPS"

// TestDropCapabilitiesAllThreads runs dropCapabilities in a child process
// (this test binary, with threads busy on other goroutines) and checks every
// thread's CapEff/CapPrm/CapBnd afterwards: only the kept ones remain.
func TestDropCapabilitiesAllThreads(t *testing.T) {
	if os.Getenv(ftEnvDropHelper) == "1" {
		ftDropHelper()
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root: capabilities to drop")
	}
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	// The helper is this package's tests built without cgo: a cgo binary
	// cannot change the capabilities of all its threads.
	testBin := filepath.Join(t.TempDir(), "caps.test")
	build := exec.Command("go", "test", "-c", "-o", testBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the static test binary: %v: %s", err, out)
	}
	cmd := exec.Command(testBin, "-test.run", "^TestDropCapabilitiesAllThreads$")
	cmd.Env = append(os.Environ(), ftEnvDropHelper+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	t.Logf("%s", out)

}

// ftDropHelper is the child of TestDropCapabilitiesAllThreads.
func ftDropHelper() {
	fail := func(f string, a ...any) { fmt.Printf("FAIL: "+f+"\n", a...); os.Exit(1) }
	// Threads: goroutines locked to their own OS threads, parked.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			runtime.LockOSThread()
			wg.Done()
			<-stop
		}()
	}
	wg.Wait()
	if err := dropCapabilities(keepAfterAttach...); err != nil {
		fail("dropCapabilities: %v", err)
	}
	var keep uint64
	for _, c := range keepAfterAttach {
		keep |= 1 << c
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	if len(tasks) < 5 {
		fail("only %d threads", len(tasks))
	}
	for _, st := range tasks {
		b, _ := os.ReadFile(st)
		for _, line := range strings.Split(string(b), "\n") {
			for _, f := range []string{"CapEff:", "CapPrm:", "CapBnd:", "CapInh:", "CapAmb:"} {
				if v, ok := strings.CutPrefix(line, f); ok {
					n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
					if n&^keep != 0 {
						fail("%s %s %x holds more than %x", st, f, n, keep)
					}
					if f == "CapEff:" && n != keep {
						fail("%s CapEff %x, want %x", st, n, keep)
					}
				}
			}
		}
	}
	close(stop)
	fmt.Printf("dropped on %d threads; CapEff %x (CAP_BPF, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE)\n", len(tasks), keep)
	os.Exit(0)
}

// TestCapabilitiesAfterStart runs tcptrace as root and reads its CapEff once
// it is tracing: CAP_PERFMON and CAP_NET_ADMIN, used only to load and
// attach, and every capability tcptrace never uses (CAP_NET_RAW, CAP_KILL,
// CAP_SYS_MODULE, CAP_CHOWN...) are gone; exactly keepAfterAttach remains;
// it still traces.
func TestCapabilitiesAfterStart(t *testing.T) {
	testutil.RequirePrivileged(t)
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	bin := staticBinary(t)
	cmd := exec.Command(bin, "--json", "--no-summary")
	out, errb, wait := testutil.StartTracer(t, cmd)
	eff := ftCapEff(t, fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	var want uint64
	for _, c := range keepAfterAttach {
		want |= 1 << c
	}
	if eff != want {
		t.Errorf("after start CapEff %x, want exactly %x (keepAfterAttach)", eff, want)
	}
	for _, c := range []int{capPerfmon, capNetAdmin} {
		if eff&(1<<c) != 0 {
			t.Errorf("after start CapEff %x still holds %s (dropCapabilities not called after attaching?)", eff, capName(c))
		}
	}
	if eff&(1<<capBPF) == 0 {
		t.Errorf("after start CapEff %x lacks CAP_BPF", eff)
	}
	c, s, port := ftPair(t)
	c.Close()
	s.Close()
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	if err := wait(); err != nil {
		t.Fatalf("tcptrace: %v: %s", err, errb)
	}
	n := 0
	for _, l := range ftParse(t, out.Bytes()) {
		if l.Sport == port || l.Dport == port {
			n++
		}
	}
	if n < 10 {
		t.Errorf("after dropping capabilities only %d transitions of the workload traced", n)
	}
}
