package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// TestAlertFiresBeforeExhaustion: a real Prometheus server scrapes a live
// `tcptrace serve` with deploy/alerts.yaml loaded, during the 64-port
// incident (the client closing first, 8 connects/s): the
// TcptracePortsRunningOut alert toward the server fires before the
// client's first EADDRNOTAVAIL.
func TestAlertFiresBeforeExhaustion(t *testing.T) {
	testutil.RequirePrivileged(t)
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus); CI installs it")
	}
	rules, err := filepath.Abs("../../deploy/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHosts(t, 3)
	_, maddr := startServe(t, "--port", "8080")

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: tcptrace
    static_configs: [{targets: [%q]}]
`, rules, maddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	web := freePort(t)
	p := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web)
	var plog strings.Builder
	p.Stdout, p.Stderr = &plog, &plog
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Process.Kill(); p.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if r, err := http.Get("http://" + web + "/-/ready"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready: %s", plog.String())
		}
	}

	py := filepath.Join(dir, "incident.py")
	if err := os.WriteFile(py, []byte(incidentPy), 0o644); err != nil {
		t.Fatal(err)
	}
	startIncidentServer(t, h, py, "client-close")
	cli := exec.Command("ip", "netns", "exec", h.cli, "python3", py, "client-close", h.srvAddr, "8080", "8", "14")
	var cout strings.Builder
	cli.Stdout = &cout
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cli.Wait() }()

	dest := h.srvAddr + ":8080"
	var fired time.Time
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			running = false
		case <-time.After(200 * time.Millisecond):
		}
		if fired.IsZero() && firing(t, web, "TcptracePortsRunningOut", dest) {
			fired = time.Now()
		}
	}
	var cr clientResult
	if err := json.Unmarshal([]byte(cout.String()), &cr); err != nil {
		t.Fatalf("client said %q: %v", cout.String(), err)
	}
	if cr.Failed == 0 || cr.FirstFail == nil {
		t.Fatalf("the client never hit EADDRNOTAVAIL: %+v", cr)
	}
	first := time.Unix(0, int64(*cr.FirstFail*1e9))
	if fired.IsZero() || !fired.Before(first) {
		t.Fatalf("TcptracePortsRunningOut toward %s fired at %v, the first EADDRNOTAVAIL was at %v", dest, fired, first)
	}
	t.Logf("TcptracePortsRunningOut toward %s fired %v before the first EADDRNOTAVAIL (%d failed, %d ok)",
		dest, first.Sub(fired).Round(time.Millisecond), cr.Failed, cr.OK)
}

// firing reports whether Prometheus at web has alert firing toward dest.
func firing(t *testing.T, web, alert, dest string) bool {
	t.Helper()
	r, err := http.Get("http://" + web + "/api/v1/alerts")
	if err != nil {
		return false
	}
	defer r.Body.Close()
	var resp struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if json.NewDecoder(r.Body).Decode(&resp) != nil {
		return false
	}
	for _, a := range resp.Data.Alerts {
		if a.Labels["alertname"] == alert && a.State == "firing" && a.Labels["destination"] == dest {
			return true
		}
	}
	return false
}
