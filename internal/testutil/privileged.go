// Package testutil holds helpers shared by tests that need the real kernel.
package testutil

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/probe"
)

// EnvRequire makes privileged tests fail instead of skipping when set to 1
// (.ci/run sets it: a skipped kernel test must not pass CI).
const EnvRequire = "TCPTRACE_REQUIRE_PRIVILEGED"

// RequirePrivileged skips t with the reason when the process cannot load
// eBPF programs, or fails it when EnvRequire is set.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	err := probe.CheckCapabilities()
	if err == nil {
		err = probe.CheckKernel()
	}
	if err == nil {
		if _, e := os.Stat(probe.BTFPath); e != nil {
			err = e
		}
	}
	if err == nil {
		shareKernel(t)
		return
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("privileged test cannot run (%v) and %s=1", err, EnvRequire)
	}
	t.Skipf("privileged test skipped: %v (run as root; CI sets %s=1)", err, EnvRequire)
}

// RefusedConnect connects to 127.0.0.1:port, which must be bound but not
// listening, expects ECONNREFUSED, and returns the refused socket's cookie.
func RefusedConnect(t testing.TB, port int) uint64 {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	unix.Close(fd)
	if err != unix.ECONNREFUSED {
		t.Fatalf("connect to bound-only port %d: %v, want ECONNREFUSED", port, err)
	}
	return cookie
}
