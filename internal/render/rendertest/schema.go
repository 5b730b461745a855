package rendertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// SchemaFile is the JSON Schema of every JSON line tcptrace writes, from
// the module's root.
const SchemaFile = "docs/tcptrace.schema.json"

var schema struct {
	once sync.Once
	s    *jsonschema.Schema
	err  error
}

// Schema returns docs/tcptrace.schema.json compiled, found from the
// working directory up to the module's root.
func Schema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	schema.once.Do(func() {
		dir, err := os.Getwd()
		for err == nil {
			if _, e := os.Stat(filepath.Join(dir, "go.mod")); e == nil {
				break
			}
			up := filepath.Dir(dir)
			if up == dir {
				err = fmt.Errorf("no go.mod above the working directory")
			}
			dir = up
		}
		if err != nil {
			schema.err = err
			return
		}
		schema.s, schema.err = jsonschema.NewCompiler().Compile(filepath.Join(dir, SchemaFile))
	})
	if schema.err != nil {
		t.Fatalf("schema: %v", schema.err)
	}
	return schema.s
}

// ValidateJSONLines fails t unless every line of out is a JSON object
// valid against docs/tcptrace.schema.json; where names out in messages.
func ValidateJSONLines(t testing.TB, where string, out []byte) {
	t.Helper()
	s := Schema(t)
	for i, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
		if err != nil {
			t.Errorf("%s line %d: %v: %s", where, i+1, err, line)
			continue
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("%s line %d: %v\n%s", where, i+1, err, line)
		}
	}
}

// FieldTypes records the JSON type of each member name seen, at any
// depth, to check that a name has one type across every record type.
type FieldTypes map[string]string

// Check records the members of each line of out and fails t when a name
// comes with a second type (null goes with any).
func (f FieldTypes) Check(t testing.TB, where string, out []byte) {
	t.Helper()
	for i, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			t.Errorf("%s line %d: %v", where, i+1, err)
			continue
		}
		for _, e := range f.walk(v, nil) {
			t.Errorf("%s line %d: %s", where, i+1, e)
		}
	}
}

// maps are the members whose objects are maps: their keys are data (an
// end's name), not member names.
var maps = map[string]bool{"ends": true}

// walk records the members of v and returns the clashes.
func (f FieldTypes) walk(v any, errs []string) []string {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			errs = f.walk(e, errs)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			typ := jsonType(x[k])
			if had, ok := f[k]; ok && had != typ && typ != "null" {
				errs = append(errs, fmt.Sprintf("%q is %s here, %s elsewhere", k, typ, had))
			} else if !ok && typ != "null" {
				f[k] = typ
			}
			if !maps[k] {
				errs = f.walk(x[k], errs)
			}
		}
	}
	return errs
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

// unmarshal decodes one JSON value as the schema's validator wants it.
func unmarshal(s string) (any, error) {
	return jsonschema.UnmarshalJSON(bytes.NewReader([]byte(s)))
}
