package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcptrace/tcptrace/internal/metrics"
)

// promtool returns promtool's path; CI installs it (Debian's prometheus).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); CI installs it")
	}
	return p
}

// TestAlertRules: the alerting rules parse, and promtool's unit tests of
// them pass (alerts_test.yaml: each alert fires on the series it is for,
// with its summary, and not on the others).
func TestAlertRules(t *testing.T) {
	p := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		if out, err := exec.Command(p, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	checkMetricNames(t, "alerts.yaml")
}

// TestDashboard: the Grafana dashboard is JSON Grafana imports, every
// panel's query parses as PromQL (checked by promtool as a recording
// rule, Grafana's variables given values) and names only metrics the agent
// exports.
func TestDashboard(t *testing.T) {
	p := promtool(t)
	raw, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) < 5 {
		t.Fatalf("dashboard %q (uid %q) has %d panels", d.Title, d.UID, len(d.Panels))
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, pl := range d.Panels {
		if len(pl.Targets) == 0 {
			t.Errorf("panel %q has no query", pl.Title)
		}
		for _, tg := range pl.Targets {
			q, _ := json.Marshal(vars.Replace(tg.Expr)) // a JSON string is a YAML string
			n++
			rules.WriteString("      - record: dashboard:query" + strings.Repeat("x", n) + "\n        expr: " + string(q) + "\n")
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(p, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's queries do not parse: %v\n%s", err, out)
	}
	checkMetricNames(t, "grafana-dashboard.json")
}

// checkMetricNames fails for every tcptrace_ metric named in file that the
// agent does not export.
func checkMetricNames(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Every metric the agent declares, whether or not it has a series yet.
	ch := make(chan *prometheus.Desc, 64)
	go func() { metrics.New(metrics.Options{}).Describe(ch); close(ch) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	var exported []string
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			exported = append(exported, m[1])
		}
	}
	named := regexp.MustCompile(`tcptrace_[a-z0-9_]+`).FindAllString(string(raw), -1)
	if len(named) == 0 {
		t.Fatalf("%s names no tcptrace metric", file)
	}
	for _, m := range named {
		if !slices.Contains(exported, m) {
			t.Errorf("%s: %s is not a metric the agent exports (it declares %v)", file, m, exported)
		}
	}
}
