package rendertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoldensMatchSchema: every JSON golden of the renderings is valid
// against docs/tcptrace.schema.json, and a member name has one type across
// all of them.
func TestGoldensMatchSchema(t *testing.T) {
	paths, err := filepath.Glob("../*/testdata/*.golden")
	if err != nil {
		t.Fatal(err)
	}
	types, n, all := FieldTypes{}, 0, ""
	for _, p := range paths {
		if !strings.Contains(filepath.Base(p), "json") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ValidateJSONLines(t, p, b)
		types.Check(t, p, b)
		n++
		all += string(b)
	}
	if n < 10 {
		t.Fatalf("only %d JSON goldens under ../*/testdata", n)
	}
	for _, name := range []string{"transition", "connection", "lost", "warning", "time_wait_end", "time_wait_move", "report", "summary"} {
		if !strings.Contains(all, `"type":"`+name+`"`) {
			t.Errorf("no %s record in the goldens", name)
		}
	}
}

// TestSchemaRejects: the schema refuses what a reader must not meet.
func TestSchemaRejects(t *testing.T) {
	s := Schema(t)
	for _, line := range []string{
		`{"type":"nothing"}`,
		`{"time":"2025-01-02T12:00:00Z"}`,
		`{"type":"lost","time":"2025-01-02T12:00:00Z","count":1,"ring":1,"recursion":0}`,
		`{"type":"lost","time":"2025-01-02T12:00:00Z","count":1,"ring":1,"recursion":0,"total":1,"extra":1}`,
		`{"type":"lost","time":"2025-01-02T12:00:00Z","count":-1,"ring":1,"recursion":0,"total":1}`,
	} {
		v, err := unmarshal(line)
		if err != nil {
			t.Fatal(err)
		}
		if s.Validate(v) == nil {
			t.Errorf("schema accepts %s", line)
		}
	}
	types := FieldTypes{}
	types.Check(t, "ok", []byte(`{"type":"a","time_wait":true,"ends":{"reset":1}}`+"\n"+`{"type":"b","reset":true}`))
	var fake fakeT
	types.Check(&fake, "clash", []byte(`{"type":"c","time_wait":3}`))
	if !fake.failed {
		t.Error("a name with two types passed")
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
