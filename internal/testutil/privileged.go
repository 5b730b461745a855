// Package testutil holds helpers shared by tests that need the real kernel.
package testutil

import (
	"os"
	"testing"

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
		return
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("privileged test cannot run (%v) and %s=1", err, EnvRequire)
	}
	t.Skipf("privileged test skipped: %v (run as root; CI sets %s=1)", err, EnvRequire)
}
