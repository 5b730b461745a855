package main

// A real container test: the agent image, built FROM scratch from the
// locally built static binary (no registry is reachable), runs under docker
// with the documented flags, traces a connection made on the host with its
// owner, and names the container of a connection made inside another one.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// dockerFlags are the documented flags of the agent under docker (see
// docs/deploy.md, "Docker, on one host"). Docker before 23 does not know the
// names BPF and PERFMON: SYS_ADMIN covers both.
var dockerFlags = []string{"--network", "host", "--pid", "host", "--cgroupns", "host", "--read-only",
	"--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE", "-v", "/sys/kernel/btf:/sys/kernel/btf:ro"}

// dialerSource is a program run in a container of its own (no network but
// its loopback): it connects to itself on loopback, closes first, and stays
// alive a while so that its namespace and cgroup can be looked up.
const dialerSource = `package main

import (
	"io"
	"net"
	"os"
	"time"
)

func main() {
	l, err := net.Listen("tcp4", "127.0.0.1:"+os.Args[1])
	if err != nil {
		panic(err)
	}
	done := make(chan bool)
	go func() {
		c, _ := l.Accept()
		io.Copy(io.Discard, c)
		c.Close()
		done <- true
	}()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		panic(err)
	}
	c.Write([]byte("x"))
	c.Close()
	<-done
	time.Sleep(5 * time.Second)
}
`

// dockerCLI returns a function running the docker CLI against a daemon:
// the running one, or one started here with its data under a temporary
// directory. It fails the test, with the reason, when docker cannot run.
func dockerCLI(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("docker CLI not found (apt-get install docker.io): %v", err)
	}
	run := func(env []string) func(args ...string) (string, error) {
		return func(args ...string) (string, error) {
			cmd := exec.Command("docker", args...)
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
	}
	if _, err := run(nil)("info"); err == nil {
		return run(nil)
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		t.Fatalf("no docker daemon running and dockerd not found (apt-get install docker.io): %v", err)
	}
	dir, err := os.MkdirTemp("", "tcptrace-docker")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logf, _ := os.Create(filepath.Join(dir, "dockerd.log"))
	d := exec.Command(dockerd, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "-H", "unix://"+sock, "--iptables=false", "--bridge=none")
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	t.Cleanup(func() {
		_ = d.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- d.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = d.Process.Kill()
			<-done
		}
		// dockerd leaves its default network namespace mounted.
		_ = syscall.Unmount(filepath.Join(dir, "exec", "netns", "default"), syscall.MNT_DETACH)
		_ = os.RemoveAll(dir)
	})
	cli := run([]string{"DOCKER_HOST=unix://" + sock})
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := cli("info")
		if err == nil {
			return cli
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			t.Fatalf("dockerd did not come up within 30s: %v: %s\ndockerd log:\n%s", err, out, log)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestServeInContainer(t *testing.T) {
	testutil.RequirePrivileged(t)
	docker := dockerCLI(t)
	ctx := t.TempDir()
	bin, err := os.ReadFile(staticBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "tcptrace"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), df, 0o644)
	src := filepath.Join(ctx, "dialer.go")
	os.WriteFile(src, []byte(dialerSource), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(ctx, "dial"), src)
	build.Dir = ctx
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the dialer: %v: %s", err, out)
	}
	os.WriteFile(filepath.Join(ctx, "Dockerfile.dial"), []byte("FROM scratch\nCOPY dial /dial\nENTRYPOINT [\"/dial\"]\n"), 0o644)
	tag := fmt.Sprintf("tcptrace-e2e:%d", os.Getpid())
	if out, err := docker("build", "-q", "--target", "prebuilt", "-t", tag, ctx); err != nil {
		t.Fatalf("docker build --target prebuilt: %v: %s", err, out)
	}
	if out, err := docker("build", "-q", "-f", filepath.Join(ctx, "Dockerfile.dial"), "-t", tag+"-dial", ctx); err != nil {
		t.Fatalf("docker build dialer: %v: %s", err, out)
	}
	t.Cleanup(func() { docker("rmi", "-f", tag, tag+"-dial") })

	addr := freePort(t)
	port := strings.TrimPrefix(addr, "127.0.0.1:")
	maddr := freePort(t)
	args := append([]string{"run", "-d"}, dockerFlags...)
	args = append(args, tag, "serve", "--metrics-addr", maddr, "--json", "--port", port, "--heartbeat", "1s")
	id, err := docker(args...)
	if err != nil {
		t.Fatalf("docker run: %v: %s", err, id)
	}
	t.Cleanup(func() { docker("rm", "-f", id) })
	logs := func() string { out, _ := docker("logs", id); return out }
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + maddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent in the container did not become healthy: %v\n%s", err, logs())
		}
		time.Sleep(300 * time.Millisecond)
	}

	// A connection on the host, the client (this test) closing first.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	cport := c.LocalAddr().(*net.TCPAddr).Port
	c.Close()
	time.Sleep(300 * time.Millisecond)
	l.Close()

	// A connection inside another container, on its own loopback.
	dial, err := docker("run", "-d", "--network", "none", tag+"-dial", port)
	if err != nil {
		t.Fatalf("docker run dialer: %v: %s", err, dial)
	}
	t.Cleanup(func() { docker("rm", "-f", dial) })

	comm := ownComm(t)
	want := map[string]float64{
		`tcptrace_active_closes_total{comm="` + comm + `",container=""}`:          1,
		`tcptrace_active_closes_total{comm="dial",container="` + dial[:12] + `"}`: 1,
	}
	var got map[string]float64
	deadline = time.Now().Add(15 * time.Second)
	for {
		got = scrape(t, maddr)
		ok := true
		for k, w := range want {
			ok = ok && got[k] == w
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			var lines []string
			for k, v := range got {
				if strings.HasPrefix(k, "tcptrace_active_closes_total") || strings.HasPrefix(k, "tcptrace_connections_finished") {
					lines = append(lines, k+" "+strconv.FormatFloat(v, 'g', -1, 64))
				}
			}
			t.Fatalf("want %v, got:\n%s\nagent log:\n%s", want, strings.Join(lines, "\n"), logs())
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The JSON stream names the host connection's owner: this test process.
	found := false
	for _, line := range strings.Split(logs(), "\n") {
		if strings.Contains(line, `"type":"connection"`) && strings.Contains(line, `"sport":`+strconv.Itoa(cport)+`,`) {
			found = true
			if !strings.Contains(line, `"pid":`+strconv.Itoa(os.Getpid())+`,`) || !strings.Contains(line, `"comm":"`+comm+`"`) ||
				!strings.Contains(line, `"closer":"local"`) {
				t.Errorf("host connection with the wrong owner or closer (want pid %d comm %s): %s", os.Getpid(), comm, line)
			}
		}
	}
	if !found {
		t.Errorf("the host connection (port %d) is not in the agent's JSON stream:\n%s", cport, logs())
	}
}
