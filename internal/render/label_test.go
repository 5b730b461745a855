package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/events"
)

// TestLabel: Options.Label names each connection's container on its verdict
// line, and ReportOptions.ProcLabel each process in the report's tables.
func TestLabel(t *testing.T) {
	var buf bytes.Buffer
	o := Options{Width: 120, Clock: testClock, Label: func(c *events.Conn) string {
		if c.Role == events.RoleClient {
			return "container=app/web-0"
		}
		return ""
	}}
	replay(t, "../events/testdata/client_close.jsonl", NewText(&buf, o))
	lines := strings.Split(buf.String(), "\n")
	var client, server bool
	for _, l := range lines {
		if strings.Contains(l, "role=client") {
			client = strings.Contains(l, "container=app/web-0")
		}
		if strings.Contains(l, "role=server") {
			server = !strings.Contains(l, "container=")
		}
	}
	if !client || !server {
		t.Errorf("client labelled %v, server unlabelled %v:\n%s", client, server, buf.String())
	}

	rep := &diagnosis.Report{Failed: []diagnosis.FailedRow{{Owner: diagnosis.ProcKey{PID: 42, Comm: events.MakeComm("app")}, Err: "EADDRNOTAVAIL", Count: 3}}}
	buf.Reset()
	err := WriteReportText(&buf, Options{Width: 120}, ReportOptions{Short: true, ProcLabel: func(pid uint32) string {
		if pid == 42 {
			return "[container abc123]"
		}
		return ""
	}}, rep)
	if err != nil || !strings.Contains(buf.String(), "app (42) [container abc123]") {
		t.Errorf("report lacks the container label (%v):\n%s", err, buf.String())
	}
}
