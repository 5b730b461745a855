package container

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Defaults and bounds of a Resolver.
const (
	DefaultCgroupRoot = "/sys/fs/cgroup"
	DefaultProc       = "/proc"
	DefaultRescan     = 30 * time.Second       // cached answers are refreshed by a new walk after this
	minWalk           = 250 * time.Millisecond // an unknown id or namespace triggers a walk at most this often
	MaxCgroups        = 1 << 16                // cgroup directories looked at per walk
	MaxContainers     = 8192                   // container cgroups, namespaces and pods remembered
	maxProcs          = 1 << 15                // /proc entries looked at per walk
)

// DefaultConfigGlobs are where runtimes keep a running container's OCI
// config.json (%s is the container ID); its annotations name the pod.
var DefaultConfigGlobs = []string{
	"/run/containerd/io.containerd.runtime.v2.task/*/%s/config.json",
	"/run/containers/storage/overlay-containers/%s/userdata/config.json",
}

// Options configure a Resolver. Zero fields take the defaults.
type Options struct {
	CgroupRoot  string        // cgroup v2 mount: DefaultCgroupRoot
	Proc        string        // the host's /proc (hostPID in a pod): DefaultProc
	Rescan      time.Duration // DefaultRescan
	ConfigGlobs []string      // DefaultConfigGlobs; empty slice (non-nil) disables pod names
}

// Resolver maps cgroup ids and network namespaces to containers, from
// bounded caches refreshed by walking the cgroup tree and /proc at most
// once per Rescan. It is safe for concurrent use.
type Resolver struct {
	o         Options
	mu        sync.Mutex
	cgroups   map[uint64]Info      // container cgroups found by the latest walk
	cgMiss    map[uint64]time.Time // ids not found by the walk at that time
	cgWalked  time.Time
	netns     map[uint32]Info      // every namespace of the latest walk: the zero Info when not one container's or pod's
	nsMiss    map[uint32]time.Time // namespaces with no process at that walk
	nsWalked  time.Time
	hostNetns uint32
	pods      map[string]Info // container ID → pod name/namespace from its config
	err       error           // the latest walk's error, for diagnostics
	walks     uint64          // walks so far: a memo made before the latest is stale
	last      connMemo        // Conn's latest answer
}

// memoUses bounds how many times Conn repeats its latest answer before it
// asks the caches again (which may then rescan): churn asks about the same
// cgroup and namespace for connection after connection.
const memoUses = 1024

// connMemo is Conn's latest answer, for the same cgroup and namespace.
type connMemo struct {
	cgroup uint64
	netns  uint32
	walks  uint64 // Resolver.walks when answered
	left   int    // repeats left
	info   Info
}

// New returns a resolver; nothing is read until the first lookup.
func New(o Options) *Resolver {
	if o.CgroupRoot == "" {
		o.CgroupRoot = DefaultCgroupRoot
	}
	o.CgroupRoot = unifiedRoot(o.CgroupRoot)
	if o.Proc == "" {
		o.Proc = DefaultProc
	}
	if o.Rescan <= 0 {
		o.Rescan = DefaultRescan
	}
	if o.ConfigGlobs == nil {
		o.ConfigGlobs = DefaultConfigGlobs
	}
	r := &Resolver{o: o, cgroups: map[uint64]Info{}, cgMiss: map[uint64]time.Time{},
		netns: map[uint32]Info{}, nsMiss: map[uint32]time.Time{}, pods: map[string]Info{}}
	r.hostNetns = nsInode(filepath.Join(o.Proc, "1", "ns", "net"))
	return r
}

// Err returns the error of the latest walk, if any (e.g. no cgroup v2).
func (r *Resolver) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Conn returns the container of a connection: from its socket's cgroup,
// else from its network namespace when that belongs to a single container or pod.
func (r *Resolver) Conn(c *events.Conn) Info {
	r.mu.Lock()
	m := &r.last
	if m.left > 0 && m.walks == r.walks && m.cgroup == c.CgroupID && m.netns == c.Netns {
		m.left--
		i := m.info
		r.mu.Unlock()
		return i
	}
	walks := r.walks
	r.mu.Unlock()
	i := r.Cgroup(c.CgroupID)
	if !i.InContainer() {
		i = r.Netns(c.Netns)
	}
	r.mu.Lock()
	if r.walks == walks {
		r.last = connMemo{cgroup: c.CgroupID, netns: c.Netns, walks: walks, left: memoUses, info: i}
	}
	r.mu.Unlock()
	return i
}

// Cgroup returns the container whose cgroup (or a cgroup under it) has this
// id, the inode number of the cgroup v2 directory.
func (r *Resolver) Cgroup(id uint64) Info {
	if id == 0 {
		return Info{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok := r.cgroups[id]; ok && time.Since(r.cgWalked) < r.o.Rescan {
		return r.withPod(i)
	}
	if at, ok := r.cgMiss[id]; ok && time.Since(at) < r.o.Rescan {
		return Info{} // a host cgroup, most likely
	}
	walked := time.Since(r.cgWalked) >= minWalk
	if walked {
		r.walkCgroups()
	}
	if i, ok := r.cgroups[id]; ok {
		return r.withPod(i)
	}
	if !walked { // a walk older than the lookup may predate the cgroup
		return Info{}
	}
	if len(r.cgMiss) >= MaxContainers {
		clear(r.cgMiss)
	}
	r.cgMiss[id] = r.cgWalked
	return Info{}
}

// walkCgroups rebuilds the container-cgroup index.
func (r *Resolver) walkCgroups() {
	r.cgWalked = time.Now()
	r.walks++
	next := make(map[uint64]Info, len(r.cgroups))
	seen := 0
	err := filepath.WalkDir(r.o.CgroupRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == r.o.CgroupRoot {
				return err
			}
			return nil // a cgroup removed under the walk
		}
		if !d.IsDir() {
			return nil
		}
		if seen++; seen > MaxCgroups {
			return fs.SkipAll
		}
		rel := strings.TrimPrefix(p, r.o.CgroupRoot)
		i := ParseCgroupPath(rel)
		if !i.InContainer() || len(next) >= MaxContainers {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				next[st.Ino] = i
			}
		}
		return nil
	})
	if err != nil {
		r.err = fmt.Errorf("walking %s: %w", r.o.CgroupRoot, err)
	}
	r.cgroups = next
}

// Netns returns the container or pod that alone has processes in the
// network namespace with this inode; the zero Info for the host's
// namespace or one shared by several.
func (r *Resolver) Netns(ino uint32) Info {
	if ino == 0 || ino == r.hostNetns {
		return Info{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.netns[ino]
	if ok && time.Since(r.nsWalked) < r.o.Rescan {
		return r.withPod(i)
	}
	if at, ok := r.nsMiss[ino]; ok && time.Since(at) < r.o.Rescan {
		return Info{} // a namespace no process has entered (ip netns add), most likely
	}
	walked := time.Since(r.nsWalked) >= minWalk
	if walked {
		r.walkProc()
	}
	i, ok = r.netns[ino]
	if !ok && walked { // a walk older than the lookup may predate the namespace's processes
		if len(r.nsMiss) >= MaxContainers {
			clear(r.nsMiss)
		}
		r.nsMiss[ino] = r.nsWalked
	}
	return r.withPod(i)
}

// walkProc rebuilds the namespace index from /proc/<pid>/ns/net and
// /proc/<pid>/cgroup.
func (r *Resolver) walkProc() {
	r.nsWalked = time.Now()
	r.walks++
	d, err := os.Open(r.o.Proc)
	if err != nil {
		r.err = fmt.Errorf("reading %s: %w", r.o.Proc, err)
		return
	}
	names, _ := d.Readdirnames(maxProcs)
	d.Close()
	type acc struct {
		info  Info
		mixed bool // processes of several containers (a pod's): keep the pod only
		host  bool // a process in no container: the namespace is not a container's
	}
	byNs := map[uint32]*acc{}
	for _, name := range names {
		if _, err := strconv.ParseUint(name, 10, 32); err != nil {
			continue
		}
		ns := nsInode(filepath.Join(r.o.Proc, name, "ns", "net"))
		if ns == 0 || ns == r.hostNetns {
			continue
		}
		i := ParseCgroupPath(procCgroup(filepath.Join(r.o.Proc, name, "cgroup")))
		a := byNs[ns]
		if a == nil {
			if len(byNs) >= MaxContainers {
				continue
			}
			byNs[ns] = &acc{info: i, host: !i.InContainer()}
			continue
		}
		switch {
		case !i.InContainer():
			a.host = true
		case a.info.ID != i.ID:
			a.mixed = true
			if a.info.PodUID != i.PodUID {
				a.info.PodUID = ""
			}
		}
	}
	next := make(map[uint32]Info, len(byNs))
	for ns, a := range byNs {
		switch {
		case a.host:
			next[ns] = Info{}
		case a.mixed && a.info.PodUID != "":
			next[ns] = Info{PodUID: a.info.PodUID}
		case !a.mixed:
			next[ns] = a.info
		default:
			next[ns] = Info{}
		}
	}
	r.netns = next
}

// procCgroup returns a process's cgroup path: the first hierarchy's that
// names a container (cgroup v1 lists several), else the v2 one ("0::/path").
func procCgroup(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	v2 := ""
	for n := 0; sc.Scan() && n < 64; n++ {
		_, rest, _ := strings.Cut(sc.Text(), ":")
		ctrl, p, _ := strings.Cut(rest, ":")
		if ParseCgroupPath(p).InContainer() {
			return p
		}
		if ctrl == "" {
			v2 = p
		}
	}
	return v2
}

// nsInode returns the inode of a namespace file, 0 if unreadable.
func nsInode(path string) uint32 {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}

// unifiedRoot returns root if it is a cgroup v2 mount, else its "unified"
// subdirectory when that is (the hybrid layout of systemd hosts with
// cgroup v1 controllers), else root.
func unifiedRoot(root string) string {
	const cgroup2Magic = 0x63677270
	var fs syscall.Statfs_t
	if syscall.Statfs(root, &fs) == nil && fs.Type == cgroup2Magic {
		return root
	}
	u := filepath.Join(root, "unified")
	if syscall.Statfs(u, &fs) == nil && fs.Type == cgroup2Magic {
		return u
	}
	return root
}

// PID returns the container of a process, from its /proc/PID/cgroup.
func (r *Resolver) PID(pid uint32) Info {
	p := procCgroup(filepath.Join(r.o.Proc, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	i := ParseCgroupPath(p)
	if !i.InContainer() {
		return i
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.withPod(i)
}
