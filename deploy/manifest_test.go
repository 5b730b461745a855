// Package deploy holds the Kubernetes manifests of the tcptrace node agent;
// its test checks that they parse and keep the documented security context.
package deploy

import (
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// docs parses every YAML document of a file.
func docs(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, &n)
	}
}

// get walks mapping keys (and numeric list indexes as "0", "1"...).
func get(n *yaml.Node, path ...string) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode {
		n = n.Content[0]
	}
	for _, k := range path {
		if n == nil {
			return nil
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if k == string(rune('0'+i)) {
					next = c
				}
			}
		}
		n = next
	}
	return n
}

func value(n *yaml.Node) string {
	if n == nil {
		return "<missing>"
	}
	return n.Value
}

func TestDaemonSet(t *testing.T) {
	var ds *yaml.Node
	for _, d := range docs(t, "daemonset.yaml") {
		if value(get(d, "kind")) == "DaemonSet" {
			ds = d
		}
	}
	if ds == nil {
		t.Fatal("no DaemonSet in daemonset.yaml")
	}
	pod := get(ds, "spec", "template", "spec")
	if value(get(pod, "hostPID")) != "true" {
		t.Error("hostPID must be true: owners and namespaces come from the node's /proc")
	}
	c := get(pod, "containers", "0")
	sc := get(c, "securityContext")
	for key, want := range map[string]string{
		"readOnlyRootFilesystem": "true",
		"privileged":             "false",
		"runAsUser":              "0",
	} {
		if got := value(get(sc, key)); got != want {
			t.Errorf("securityContext.%s = %s, want %s", key, got, want)
		}
	}
	if v := value(get(sc, "capabilities", "drop", "0")); v != "ALL" {
		t.Errorf("capabilities.drop = %s, want ALL", v)
	}
	var added []string
	for _, n := range get(sc, "capabilities", "add").Content {
		added = append(added, n.Value)
		if strings.TrimSpace(n.LineComment+n.HeadComment) == "" {
			t.Errorf("capability %s has no comment giving its reason", n.Value)
		}
	}
	slices.Sort(added)
	if want := []string{"BPF", "DAC_READ_SEARCH", "PERFMON", "SYS_ADMIN", "SYS_PTRACE"}; !slices.Equal(added, want) {
		t.Errorf("capabilities.add = %v, want exactly %v", added, want)
	}
	for _, k := range []string{"requests", "limits"} {
		for _, r := range []string{"cpu", "memory"} {
			if get(c, "resources", k, r) == nil {
				t.Errorf("resources.%s.%s missing", k, r)
			}
		}
	}
	ann := get(ds, "spec", "template", "metadata", "annotations")
	if value(get(ann, "prometheus.io/scrape")) != "true" || value(get(ann, "prometheus.io/port")) != "9464" {
		t.Error("prometheus.io scrape annotations missing")
	}
	if value(get(c, "livenessProbe", "httpGet", "path")) != "/healthz" {
		t.Error("livenessProbe must check /healthz")
	}
	args := get(c, "args")
	if value(get(args, "0")) != "serve" {
		t.Errorf("args must start with serve")
	}
	var mounts []string
	for _, m := range get(c, "volumeMounts").Content {
		mounts = append(mounts, value(get(m, "mountPath")))
		if value(get(m, "readOnly")) != "true" {
			t.Errorf("mount %s is writable", value(get(m, "mountPath")))
		}
	}
	if !slices.Contains(mounts, "/sys/kernel/btf") {
		t.Errorf("mounts %v lack /sys/kernel/btf", mounts)
	}
}

func TestScrapeConfigs(t *testing.T) {
	found := false
	for _, d := range docs(t, "servicemonitor.yaml") {
		if value(get(d, "kind")) == "ServiceMonitor" {
			found = true
			if value(get(d, "spec", "endpoints", "0", "port")) != "metrics" {
				t.Error("ServiceMonitor endpoint must use the metrics port")
			}
		}
	}
	if !found {
		t.Error("no ServiceMonitor")
	}
	sc := docs(t, "scrape-config.yaml")
	if len(sc) != 1 || value(get(sc[0], "scrape_configs", "0", "job_name")) != "tcptrace" {
		t.Error("scrape-config.yaml: no tcptrace job")
	}
}
