package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// TestRecordIncidentCapture records the 64-port incident (client closes
// first, connect() fails with EADDRNOTAVAIL) as the capture top's model
// tests replay: internal/render/top/testdata/incident64.tcpt. It runs
// only with TCPTRACE_RECORD=1 (root).
func TestRecordIncidentCapture(t *testing.T) {
	if os.Getenv("TCPTRACE_RECORD") != "1" {
		t.Skip("records a capture: TCPTRACE_RECORD=1")
	}
	testutil.RequirePrivileged(t)
	h := newHosts(t, 5)
	py := filepath.Join(t.TempDir(), "incident.py")
	if err := os.WriteFile(py, []byte(incidentPy), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := filepath.Abs("../../internal/render/top/testdata/incident64.tcpt")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Dir(out), 0o755)
	rec := startTracer(t, "-w", out, "--overwrite", "--port", "8080", "--no-summary")
	startIncidentServer(t, h, py, "client-close")
	run(t, "ip", "netns", "exec", h.cli, "python3", py, "client-close", h.srvAddr, "8080", "20", "8")
	rec.stop(t, syscall.SIGINT)
	_ = os.Chmod(out, 0o644)
}
