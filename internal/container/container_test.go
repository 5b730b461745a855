package container

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/events/eventstest"
)

const (
	id1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	uid = "8a1b2c3d-1111-2222-3333-444455556666"
)

func TestParseCgroupPath(t *testing.T) {
	uidU := strings.ReplaceAll(uid, "-", "_")
	for _, tc := range []struct {
		path string
		want Info
	}{
		{"/system.slice/docker-" + id1 + ".scope", Info{ID: id1, Runtime: "docker"}},
		{"/docker/" + id1, Info{ID: id1, Runtime: "docker"}},
		{"/docker/" + id1 + "/init.scope", Info{ID: id1, Runtime: "docker"}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			Info{ID: id1, Runtime: "containerd", PodUID: uid}},
		{"/kubepods/besteffort/pod" + uid + "/" + id2, Info{ID: id2, PodUID: uid}},
		{"/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + id2 + ".scope", Info{ID: id2, Runtime: "crio", PodUID: uid}},
		{"/machine.slice/libpod-" + id1 + ".scope/container", Info{ID: id1, Runtime: "podman"}},
		{"/kubepods.slice/kubepods-pod" + uidU + ".slice", Info{}}, // the pod, not a container
		{"/system.slice/ssh.service", Info{}},
		{"/", Info{}},
		{"/user.slice/docker-xyz.scope", Info{}},
		{"/" + id1, Info{}}, // a bare ID at the root names no runtime dir
	} {
		if got := ParseCgroupPath(tc.path); got != tc.want {
			t.Errorf("ParseCgroupPath(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// fakeHost lays out a cgroup tree, a /proc and a runtime's config under dir.
func fakeHost(t *testing.T) (dir string, o Options) {
	dir = t.TempDir()
	mk := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cg := filepath.Join(dir, "cgroup")
	for _, p := range []string{"system.slice/docker-" + id1 + ".scope", "system.slice/ssh.service",
		"kubepods/besteffort/pod" + uid + "/" + id2} {
		if err := os.MkdirAll(filepath.Join(cg, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	proc := filepath.Join(dir, "proc")
	mk(filepath.Join(proc, "1/ns/net"), "host")
	mk(filepath.Join(proc, "1/cgroup"), "0::/init.scope\n")
	mk(filepath.Join(proc, "10/ns/net"), "ns-a")
	mk(filepath.Join(proc, "10/cgroup"), "0::/system.slice/docker-"+id1+".scope\n")
	// Two containers of one pod share a namespace: the pod is known, not the container.
	mk(filepath.Join(proc, "20/ns/net"), "ns-b")
	mk(filepath.Join(proc, "20/cgroup"), "0::/kubepods/besteffort/pod"+uid+"/"+id2+"\n")
	mk(filepath.Join(proc, "21/cgroup"), "0::/kubepods/besteffort/pod"+uid+"/"+id1+"\n")
	if err := os.Link(filepath.Join(proc, "20/ns/net"), filepath.Join(proc, "21/ns/net")); err != nil {
		if err := os.MkdirAll(filepath.Join(proc, "21/ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(proc, "20/ns/net"), filepath.Join(proc, "21/ns/net")); err != nil {
			t.Fatal(err)
		}
	}
	// A host process in a namespace of its own with a container's: not attributed.
	mk(filepath.Join(proc, "30/ns/net"), "ns-c")
	mk(filepath.Join(proc, "30/cgroup"), "0::/system.slice/ssh.service\n")
	mk(filepath.Join(dir, "run/k8s.io", id2, "config.json"),
		`{"annotations":{"io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"shop"}}`)
	return dir, Options{CgroupRoot: cg, Proc: proc, Rescan: time.Hour,
		ConfigGlobs: []string{filepath.Join(dir, "run/*/%s/config.json")}}
}

func TestResolver(t *testing.T) {
	dir, o := fakeHost(t)
	r := New(o)
	cg := o.CgroupRoot
	docker := r.Cgroup(inodeOf(t, filepath.Join(cg, "system.slice/docker-"+id1+".scope")))
	if docker != (Info{ID: id1, Runtime: "docker"}) {
		t.Errorf("docker cgroup: %+v", docker)
	}
	pod := r.Cgroup(inodeOf(t, filepath.Join(cg, "kubepods/besteffort/pod"+uid+"/"+id2)))
	if want := (Info{ID: id2, PodUID: uid, PodName: "web-0", PodNamespace: "shop"}); pod != want {
		t.Errorf("pod cgroup: %+v, want %+v", pod, want)
	}
	if pod.Label() != "shop/web-0" || docker.Label() != id1[:12] {
		t.Errorf("labels %q %q", pod.Label(), docker.Label())
	}
	if i := r.Cgroup(inodeOf(t, filepath.Join(cg, "system.slice/ssh.service"))); i.InContainer() {
		t.Errorf("host cgroup attributed: %+v", i)
	}
	if i := r.Cgroup(1 << 60); i.InContainer() {
		t.Errorf("unknown cgroup attributed: %+v", i)
	}
	proc := o.Proc
	ns := func(pid string) uint32 { return uint32(inodeOf(t, filepath.Join(proc, pid, "ns/net"))) }
	if i := r.Netns(ns("10")); i.ID != id1 {
		t.Errorf("netns of a container: %+v", i)
	}
	if i := r.Netns(ns("20")); i.ID != "" || i.PodUID != uid {
		t.Errorf("netns of a pod: %+v", i)
	}
	if i := r.Netns(ns("30")); i != (Info{}) {
		t.Errorf("netns of a host process: %+v", i)
	}
	if i := r.Netns(ns("1")); i != (Info{}) {
		t.Errorf("host netns: %+v", i)
	}
	// A connection whose cgroup is the host's but whose namespace is a container's.
	c := &events.Conn{CgroupID: inodeOf(t, filepath.Join(cg, "system.slice/ssh.service")), Netns: ns("10")}
	if i := r.Conn(c); i.ID != id1 {
		t.Errorf("Conn by netns: %+v", i)
	}
	// A container started after the walks is found at its first lookup
	// (Rescan is an hour here): unknown ids and namespaces trigger a walk.
	late := filepath.Join(cg, "system.slice/docker-"+id2+".scope")
	if err := os.MkdirAll(late, 0o755); err != nil {
		t.Fatal(err)
	}
	lateNs := filepath.Join(proc, "40/ns/net")
	if err := os.MkdirAll(filepath.Dir(lateNs), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(lateNs, []byte("ns-d"), 0o644)
	os.WriteFile(filepath.Join(proc, "40/cgroup"), []byte("0::/system.slice/docker-"+id2+".scope\n"), 0o644)
	time.Sleep(minWalk)
	if i := r.Cgroup(inodeOf(t, late)); i.ID != id2 {
		t.Errorf("new container's cgroup not found: %+v", i)
	}
	if i := r.Netns(ns("40")); i.ID != id2 {
		t.Errorf("new container's namespace not found: %+v", i)
	}
	_ = dir
}

// TestResolverEmptyNetns: a namespace no process has entered (a private
// one made by ip netns add, used by threads that setns) is looked up by
// every connection in it; it costs one walk per Rescan, not one per
// minWalk. A lookup the rate limit kept from walking records no miss.
func TestResolverEmptyNetns(t *testing.T) {
	_, o := fakeHost(t)
	r := New(o)
	const empty = 1 << 30
	r.Netns(empty)
	walks := r.walks
	for range 3 {
		time.Sleep(minWalk)
		if i := r.Netns(empty); i != (Info{}) {
			t.Fatalf("empty namespace attributed: %+v", i)
		}
	}
	if r.walks != walks {
		t.Errorf("%d more walks for a namespace known to have no process", r.walks-walks)
	}
	// Within minWalk of a walk, an unknown namespace is not walked for and
	// not recorded as a miss: its processes may have come after the walk.
	r.Netns(empty + 1) // walks: the latest walk is older than minWalk
	r.Netns(empty + 2)
	if _, ok := r.nsMiss[empty+1]; !ok {
		t.Error("no miss recorded from a walk made for the lookup")
	}
	if _, ok := r.nsMiss[empty+2]; ok {
		t.Error("a miss recorded from a walk older than the lookup")
	}
}

func TestResolverBounded(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 50; i++ {
		id := strings.Repeat(string("0123456789abcdef"[i%16]), 63) + string("0123456789abcdef"[i/16])
		if err := os.MkdirAll(filepath.Join(dir, "docker", id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := New(Options{CgroupRoot: dir, Proc: t.TempDir(), ConfigGlobs: []string{}})
	for i := uint64(0); i < 3*MaxContainers; i++ {
		r.Cgroup(i + 1<<40) // misses
	}
	if len(r.cgMiss) > MaxContainers || len(r.cgroups) != 50 {
		t.Errorf("caches: %d misses, %d containers", len(r.cgMiss), len(r.cgroups))
	}
}

func TestFilterAndJSON(t *testing.T) {
	pod := Info{ID: id2, Runtime: "containerd", PodUID: uid, PodName: "web-0", PodNamespace: "shop"}
	for _, tc := range []struct {
		f    Filter
		ns   uint32
		info Info
		want bool
	}{
		{Filter{}, 1, Info{}, true},
		{Filter{Netns: 7}, 1, pod, false},
		{Filter{Netns: 7}, 7, pod, true},
		{Filter{Container: id2[:12]}, 7, pod, true},
		{Filter{Container: id1[:12]}, 7, pod, false},
		{Filter{Container: "web-0"}, 7, pod, true},
		{Filter{Container: "shop/web-0"}, 7, pod, true},
		{Filter{Container: "other/web-0"}, 7, pod, false},
		{Filter{Container: "host"}, 7, Info{}, true},
		{Filter{Container: "host"}, 7, pod, false},
		{Filter{Container: id2[:12]}, 7, Info{}, false},
	} {
		if got := tc.f.MatchInfo(tc.ns, tc.info); got != tc.want {
			t.Errorf("%+v.MatchInfo(%d, %+v) = %v", tc.f, tc.ns, tc.info, got)
		}
	}
	if (Filter{Container: "abc"}).Check() == nil {
		t.Error("3-digit prefix accepted")
	}
	if n, err := ParseNetns("net:[4026531840]"); err != nil || n != 4026531840 {
		t.Errorf("ParseNetns: %d %v", n, err)
	}
	if _, err := ParseNetns("x"); err == nil {
		t.Error("ParseNetns accepted x")
	}
	line := AppendJSON([]byte(`{"type":"connection"`), pod)
	line = append(line, '}')
	var m map[string]string
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if m["container"] != id2 || m["pod"] != "web-0" || m["pod_namespace"] != "shop" || m["pod_uid"] != uid || m["runtime"] != "containerd" {
		t.Errorf("fields: %v", m)
	}
	if got := string(AppendJSON([]byte(`{"a":1`), Info{})); got != `{"a":1` {
		t.Errorf("outside containers: %s", got)
	}
	if got := string(AppendJSON(nil, Info{PodName: "a\"b"})); got != `,"pod":"a\"b"` {
		t.Errorf("escaping: %s", got)
	}
}

// Filtered drops connections of other containers and passes losses.
func TestFiltered(t *testing.T) {
	_, o := fakeHost(t)
	r := New(o)
	var col eventstest.Collector
	f := Filtered(Filter{Container: id1[:8]}, r, &col)
	in := &events.Conn{CgroupID: inodeOf(t, filepath.Join(o.CgroupRoot, "system.slice/docker-"+id1+".scope"))}
	out := &events.Conn{CgroupID: inodeOf(t, filepath.Join(o.CgroupRoot, "system.slice/ssh.service"))}
	f.Finished(in)
	f.Finished(out)
	f.Transition(&events.Transition{Conn: out, Event: &events.Event{}})
	f.Loss(&events.Event{Kind: events.KindLoss})
	if len(col.Conns) != 1 || len(col.Transitions) != 0 || len(col.Losses) != 1 {
		t.Errorf("passed %d conns, %d transitions, %d losses", len(col.Conns), len(col.Transitions), len(col.Losses))
	}
}

// TestPID names a process's container from its /proc/PID/cgroup.
func TestPID(t *testing.T) {
	_, o := fakeHost(t)
	r := New(o)
	if i := r.PID(10); i.ID != id1 {
		t.Errorf("pid 10: %+v, want docker container %s", i, id1)
	}
	if i := r.PID(20); i.ID != id2 || i.PodName != "web-0" || i.PodNamespace != "shop" {
		t.Errorf("pid 20: %+v, want %s in shop/web-0", i, id2)
	}
	if i := r.PID(1); i.InContainer() {
		t.Errorf("pid 1 (host): %+v", i)
	}
	if i := r.PID(999); i.InContainer() {
		t.Errorf("missing pid: %+v", i)
	}
}

func TestConnMemo(t *testing.T) {
	_, o := fakeHost(t)
	r := New(o)
	ns10 := uint32(inodeOf(t, filepath.Join(o.Proc, "10/ns/net")))
	host := inodeOf(t, filepath.Join(o.CgroupRoot, "system.slice/ssh.service"))
	pod := inodeOf(t, filepath.Join(o.CgroupRoot, "kubepods/besteffort/pod"+uid+"/"+id2))
	for range 3 * memoUses {
		if i := r.Conn(&events.Conn{CgroupID: host, Netns: ns10}); i.ID != id1 {
			t.Fatalf("repeated Conn by netns: %+v", i)
		}
	}
	// Another key is not answered from the memo.
	if i := r.Conn(&events.Conn{CgroupID: pod, Netns: ns10}); i.ID != id2 || i.PodName != "web-0" {
		t.Errorf("Conn by cgroup after a memo: %+v", i)
	}
	// A walk makes the memo stale.
	r.Conn(&events.Conn{CgroupID: host, Netns: ns10})
	r.mu.Lock()
	r.walkProc()
	r.netns[ns10] = Info{}
	r.mu.Unlock()
	if i := r.Conn(&events.Conn{CgroupID: host, Netns: ns10}); i.ID != "" {
		t.Errorf("memo outlived a walk: %+v", i)
	}
}

func TestAppendJSONEscapes(t *testing.T) {
	got := string(AppendJSON(nil, Info{ID: "abc", PodName: `we"b<0>`, PodNamespace: "shop"}))
	if want := `,"container":"abc","pod":"we\"b\u003c0\u003e","pod_namespace":"shop"`; got != want {
		t.Errorf("AppendJSON = %s, want %s", got, want)
	}
}

func BenchmarkConn(b *testing.B) {
	dir := b.TempDir()
	r := New(Options{CgroupRoot: dir, Proc: dir, ConfigGlobs: []string{}})
	c := &events.Conn{CgroupID: 12345, Netns: 4026532177}
	r.Conn(c)
	b.ReportAllocs()
	for b.Loop() {
		r.Conn(c)
	}
}
