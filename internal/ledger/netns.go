package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/nsexec"
)

// namedNetns is where `ip netns add` keeps its namespaces.
const namedNetns = "/run/netns"

// SysctlNames are the net.ipv4 settings that decide TIME_WAIT's cost, as
// ReadSysctls reads them in each namespace: for the live diagnosis and for
// the namespace records of captures alike, so that a replay forecasts from
// what the live run used.
var SysctlNames = []string{"ip_local_port_range", "tcp_tw_reuse", "tcp_timestamps",
	"tcp_max_tw_buckets", "tcp_fin_timeout", "tcp_tw_reuse_delay"}

// The kernel's default ip_local_port_range.
const defaultPortLo, defaultPortHi = 32768, 60999

// Namespaces returns every network namespace that can hold TCP sockets, each
// once: this process's (proc/self/ns/net), those `ip netns add` named
// (/run/netns) and every process's (proc/PID/ns/net: containers').
func Namespaces(proc string) []Netns {
	var out []Netns
	seen := map[uint32]bool{}
	add := func(path string) {
		if ino := inode(path); ino != 0 && !seen[ino] {
			seen[ino] = true
			out = append(out, Netns{Inode: ino, Path: path})
		}
	}
	add(filepath.Join(proc, "self", "ns", "net"))
	if names, err := os.ReadDir(namedNetns); err == nil {
		for _, n := range names {
			add(filepath.Join(namedNetns, n.Name()))
		}
	}
	d, err := os.Open(proc)
	if err != nil {
		return out
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, name := range names {
		if _, err := strconv.ParseUint(name, 10, 32); err == nil {
			add(filepath.Join(proc, name, "ns", "net"))
		}
	}
	return out
}

// FindNetns returns namespace ino opened through the first of paths that
// names it, else through any path of Namespaces(proc); false if none does.
func FindNetns(proc string, ino uint32, paths ...string) (Netns, bool) {
	for _, p := range paths {
		if inode(p) == ino {
			return Netns{Inode: ino, Path: p}, true
		}
	}
	for _, ns := range Namespaces(proc) {
		if ns.Inode == ino {
			return ns, true
		}
	}
	return Netns{}, false
}

// NetnsInode returns the inode of the network namespace file at path (as
// events carry it in Event.Netns), 0 if unreadable.
func NetnsInode(path string) uint32 { return inode(path) }

// inode returns the inode of a namespace file, 0 if unreadable.
func inode(path string) uint32 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}

// openNetns opens the namespace, checking that its path still names it (a
// process's path may name another namespace once the process is gone).
func openNetns(ns Netns) (netns.NsHandle, error) {
	h, err := netns.GetFromPath(ns.Path)
	if err != nil {
		return h, fmt.Errorf("opening netns %d: %w", ns.Inode, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil || uint32(st.Ino) != ns.Inode {
		h.Close()
		return netns.None(), fmt.Errorf("opening netns %d: %s is netns %d now", ns.Inode, ns.Path, st.Ino)
	}
	return h, nil
}

// ReadSysctls reads SysctlNames inside the namespace; a setting the kernel
// lacks (tcp_tw_reuse_delay on older kernels) is left out, and
// diagnosis.ParseSysctls takes the kernel's default for it.
func ReadSysctls(ns Netns) (map[string]string, error) {
	h, err := openNetns(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	m, err := readSysctls(procRoot, h)
	if err != nil {
		return nil, fmt.Errorf("netns %d: %w", ns.Inode, err)
	}
	return m, nil
}

// readSysctls reads SysctlNames inside target; a setting the kernel lacks is left out.
func readSysctls(proc string, target netns.NsHandle) (map[string]string, error) {
	m := make(map[string]string, len(SysctlNames))
	err := nsexec.In(target, func() {
		for _, name := range SysctlNames {
			if b, err := os.ReadFile(filepath.Join(proc, "sys", "net", "ipv4", name)); err == nil {
				m[name] = strings.Join(strings.Fields(string(b)), " ")
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading sysctls: %w", err)
	}
	return m, nil
}

// portRange parses ip_local_port_range as diagnosis.ParseSysctls does,
// falling back to the kernel's default.
func portRange(m map[string]string) (lo, hi uint16) {
	if f := strings.Fields(m["ip_local_port_range"]); len(f) == 2 {
		l, err1 := strconv.Atoi(f[0])
		h, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && l > 0 && h >= l && h < 65536 {
			return uint16(l), uint16(h)
		}
	}
	return defaultPortLo, defaultPortHi
}
