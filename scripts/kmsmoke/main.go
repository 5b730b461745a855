// Command kmsmoke is the kernel-matrix smoke workload. It runs the tcptrace
// binary (--json), makes three loopback connections of known shape — client
// closes first, server closes first, connection refused — and checks the
// exact transitions of every socket, the owner of every transition (this
// process, also for the transitions the kernel makes in softirq), each
// connection's verdict, and that nothing was lost or inferred.
//
// It prints one line "KMATRIX-RESULT: PASS kernel=…" or
// "KMATRIX-RESULT: FAIL kernel=… reason" and exits 0 or 1. scripts/kernel-matrix
// runs it as a VM's workload and reads that line from the serial console; it
// runs on the host as well:
//
//	CGO_ENABLED=0 go build -o /tmp/tcptrace ./cmd/tcptrace
//	go run ./scripts/kmsmoke -tcptrace /tmp/tcptrace
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type record struct {
	Type     string `json:"type"`
	Cookie   uint64 `json:"cookie"`
	PID      uint32 `json:"pid"`
	Comm     string `json:"comm"`
	Source   string `json:"owner_source"`
	Sport    uint16 `json:"sport"`
	Dport    uint16 `json:"dport"`
	Old      string `json:"old"`
	New      string `json:"new"`
	Inferred any    `json:"inferred"` // true on a transition, a count on a connection
	Role     string `json:"role"`
	Closer   string `json:"closer"`
	End      string `json:"end"`
	Err      string `json:"err"`
	TimeWait bool   `json:"time_wait"`
	Lost     struct {
		Total uint64 `json:"total"`
	} `json:"lost"`
	Total uint64 `json:"total"`
}

// sock is one socket's expected life.
type sock struct {
	what   string
	match  func(r *record) bool
	seq    []string
	role   string
	closer string
	end    string
}

var (
	activeClient  = []string{"CLOSE>SYN_SENT", "SYN_SENT>ESTABLISHED", "ESTABLISHED>FIN_WAIT1", "FIN_WAIT1>FIN_WAIT2", "FIN_WAIT2>TIME_WAIT"}
	passiveClient = []string{"CLOSE>SYN_SENT", "SYN_SENT>ESTABLISHED", "ESTABLISHED>CLOSE_WAIT", "CLOSE_WAIT>LAST_ACK", "LAST_ACK>CLOSE"}
	activeServer  = []string{"LISTEN>SYN_RECV", "SYN_RECV>ESTABLISHED", "ESTABLISHED>FIN_WAIT1", "FIN_WAIT1>FIN_WAIT2", "FIN_WAIT2>TIME_WAIT"}
	passiveServer = []string{"LISTEN>SYN_RECV", "SYN_RECV>ESTABLISHED", "ESTABLISHED>CLOSE_WAIT", "CLOSE_WAIT>LAST_ACK", "LAST_ACK>CLOSE"}
	listener      = []string{"CLOSE>LISTEN", "LISTEN>CLOSE"}
)

var strictLoss, dump *bool

func main() {
	bin := flag.String("tcptrace", "/tcptrace", "tcptrace binary")
	strictLoss = flag.Bool("strict-loss", false, "fail on any lost event (a quiet VM)")
	dump = flag.Bool("dump", false, "on failure, print this process's records")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after this long")
	flag.Parse()
	kernel := release()
	time.AfterFunc(*timeout, func() {
		fmt.Printf("KMATRIX-RESULT: FAIL kernel=%s timed out after %v\n", kernel, *timeout)
		os.Exit(1)
	})
	if err := run(*bin); err != nil {
		fmt.Printf("KMATRIX-RESULT: FAIL kernel=%s %v\n", kernel, strings.ReplaceAll(err.Error(), "\n", " | "))
		os.Exit(1)
	}
	fmt.Printf("KMATRIX-RESULT: PASS kernel=%s\n", kernel)
}

func release() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

func run(bin string) error {
	cmd := exec.Command(bin, "--json")
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	var errText bytes.Buffer
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		ok := false
		for sc.Scan() {
			errText.WriteString(sc.Text() + "\n")
			if !ok && strings.Contains(sc.Text(), "tracing TCP state changes") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	defer func() {
		// Which TIME_WAIT method this kernel allows (the start-up line).
		for _, l := range strings.Split(errText.String(), "\n") {
			if strings.Contains(l, "TIME_WAIT:") {
				fmt.Printf("kmsmoke: %s\n", l)
			}
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			return fmt.Errorf("tcptrace did not start: %s", strings.TrimSpace(errText.String()))
		}
	case <-time.After(60 * time.Second):
		return fmt.Errorf("tcptrace did not start within 60s: %s", errText.String())
	}
	fmt.Printf("kmsmoke: tcptrace ready after %v\n", time.Since(start).Round(time.Millisecond))

	socks, err := workload()
	if err != nil {
		return err
	}
	time.Sleep(1 * time.Second) // softirq transitions, then one poll period
	_ = cmd.Process.Signal(syscall.SIGINT)
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			return fmt.Errorf("tcptrace exited with %v: %s", err, errText.String())
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("tcptrace did not exit within 30s of SIGINT")
	}
	return check(&out, socks)
}

// workload makes the three connections and returns the sockets to expect.
func workload() ([]sock, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	var d net.Dialer
	d.SetMultipathTCP(false)
	var socks []sock

	for _, clientFirst := range []bool{true, false} {
		l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := uint16(l.Addr().(*net.TCPAddr).Port)
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			return nil, err
		}
		s, err := l.Accept()
		if err != nil {
			return nil, err
		}
		cport := uint16(c.LocalAddr().(*net.TCPAddr).Port)
		first, second := c, s
		if !clientFirst {
			first, second = s, c
		}
		first.Write([]byte("PING\r\n"))
		first.Close()
		if _, err := io.Copy(io.Discard, second); err != nil {
			return nil, err
		}
		second.Close()
		l.Close()
		name, cs, ss, ccl, scl := "client-close", activeClient, passiveServer, "local", "peer"
		if !clientFirst {
			name, cs, ss, ccl, scl = "server-close", passiveClient, activeServer, "peer", "local"
		}
		socks = append(socks,
			sock{name + " client", func(r *record) bool { return r.Sport == cport && r.Dport == port }, cs, "client", ccl, "graceful"},
			sock{name + " server", func(r *record) bool { return r.Sport == port && r.Dport == cport }, ss, "server", scl, "graceful"},
			sock{name + " listener", func(r *record) bool { return r.Sport == port && r.Dport == 0 }, listener, "listener", "none", "closed"},
		)
	}

	// Refused: a port that was just listening and is now closed.
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	if c, err := d.Dial("tcp4", addr); err == nil {
		c.Close()
		return nil, fmt.Errorf("connecting to closed port %s succeeded", addr)
	}
	socks = append(socks,
		sock{"refused listener", func(r *record) bool { return r.Sport == port && r.Dport == 0 }, listener, "listener", "none", "closed"},
		sock{"refused client", func(r *record) bool { return r.Dport == port }, []string{"CLOSE>SYN_SENT", "SYN_SENT>CLOSE"}, "client", "none", "refused"},
	)
	return socks, nil
}

func check(out *bytes.Buffer, socks []sock) error {
	me := uint32(os.Getpid())
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}
	var recs []record
	var sum *record
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r record
		if strings.HasPrefix(line, `{"type":"summary"`) {
			sum = &r
			var s struct {
				Lost struct {
					Total uint64 `json:"total"`
				} `json:"lost"`
			}
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				return fmt.Errorf("bad summary %q: %v", line, err)
			}
			r.Lost.Total = s.Lost.Total
			continue
		}
		if !strings.HasPrefix(line, `{"type":"transition"`) && !strings.HasPrefix(line, `{"type":"connection"`) && !strings.HasPrefix(line, `{"type":"lost"`) {
			continue // the diagnosis (report, warning, time_wait_end) is not checked here
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("bad JSON line %q: %v", line, err)
		}
		switch r.Type {
		case "lost":
			// Other traffic may lose events on a busy host; this workload's
			// own sockets are checked exactly below.
			fmt.Printf("kmsmoke: note: %s\n", line)
		default:
			recs = append(recs, r)
		}
	}
	if sum == nil {
		return fmt.Errorf("no summary line")
	}
	if sum.Lost.Total != 0 && *strictLoss {
		return fmt.Errorf("summary reports %d lost events", sum.Lost.Total)
	}
	var problems []string
	used := map[uint64]bool{}
	for _, s := range socks {
		// The socket's cookie: its connection record's (ports known by then).
		var cookie uint64
		for i := range recs {
			r := &recs[i]
			if r.Type == "connection" && !used[r.Cookie] && s.match(r) {
				cookie = r.Cookie
				break
			}
		}
		if cookie == 0 {
			problems = append(problems, s.what+": no transition traced")
			continue
		}
		used[cookie] = true
		var seq []string
		var conn *record
		for i := range recs {
			r := &recs[i]
			if r.Cookie != cookie {
				continue
			}
			if r.Type == "connection" {
				conn = r
				continue
			}
			seq = append(seq, r.Old+">"+r.New)
			if r.PID != me || r.Comm != comm {
				problems = append(problems, fmt.Sprintf("%s: %s>%s owned by %d/%s (%s), want %d/%s", s.what, r.Old, r.New, r.PID, r.Comm, r.Source, me, comm))
			}
			if r.Inferred == true {
				problems = append(problems, fmt.Sprintf("%s: %s>%s inferred", s.what, r.Old, r.New))
			}
		}
		if strings.Join(seq, " ") != strings.Join(s.seq, " ") {
			problems = append(problems, fmt.Sprintf("%s: transitions %v, want %v", s.what, seq, s.seq))
		}
		if conn == nil {
			problems = append(problems, s.what+": no connection record")
			continue
		}
		if n, _ := conn.Inferred.(float64); n > 0 {
			problems = append(problems, fmt.Sprintf("%s: %v steps inferred", s.what, n))
		}
		if conn.Role != s.role || conn.Closer != s.closer || conn.End != s.end {
			problems = append(problems, fmt.Sprintf("%s: role=%s closer=%s end=%s, want %s %s %s", s.what, conn.Role, conn.Closer, conn.End, s.role, s.closer, s.end))
		}
		if s.end == "refused" && conn.Err != "ECONNREFUSED" {
			problems = append(problems, fmt.Sprintf("%s: err=%q, want ECONNREFUSED", s.what, conn.Err))
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 && *dump {
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if strings.Contains(line, fmt.Sprintf(`"pid":%d,`, me)) || strings.Contains(line, `"pid":0,`) {
				fmt.Println("kmsmoke: record", line)
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problems: %s", len(problems), strings.Join(problems, "; "))
	}
	fmt.Printf("kmsmoke: %d sockets checked, %d records\n", len(socks), len(recs))
	return nil
}
