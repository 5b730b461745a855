package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// maxScan bounds the /proc entries looked at to find a namespace.
const maxScan = 1 << 15

// SysctlNames are the net.ipv4 settings read in each namespace.
var SysctlNames = []string{"ip_local_port_range", "tcp_tw_reuse", "tcp_timestamps",
	"tcp_max_tw_buckets", "tcp_fin_timeout", "tcp_tw_reuse_delay"}

// inode returns the inode of a namespace file, 0 if unreadable.
func inode(path string) uint32 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}

// findNetns returns a path to the namespace with inode ino: the host's,
// one named by `ip netns add` (/run/netns), or a process's in it.
func findNetns(proc string, ino uint32) (string, error) {
	self := filepath.Join(proc, "self", "ns", "net")
	if inode(self) == ino {
		return self, nil
	}
	if names, err := os.ReadDir("/run/netns"); err == nil {
		for _, n := range names {
			p := filepath.Join("/run/netns", n.Name())
			if inode(p) == ino {
				return p, nil
			}
		}
	}
	d, err := os.Open(proc)
	if err != nil {
		return "", fmt.Errorf("netns %d: %w", ino, err)
	}
	defer d.Close()
	names, _ := d.Readdirnames(maxScan)
	for _, name := range names {
		if _, err := strconv.ParseUint(name, 10, 32); err != nil {
			continue
		}
		p := filepath.Join(proc, name, "ns", "net")
		if inode(p) == ino {
			return p, nil
		}
	}
	return "", fmt.Errorf("netns %d: no process or /run/netns entry in it", ino)
}

// readSysctls reads SysctlNames inside the namespace at path, on a locked
// thread that enters it and comes back (or dies with its goroutine).
func readSysctls(proc, path string) (map[string]string, error) {
	type result struct {
		m   map[string]string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("current netns: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("opening %s: %w", path, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("entering %s: %w", path, err)}
			return
		}
		m := make(map[string]string, len(SysctlNames))
		for _, name := range SysctlNames {
			if b, err := os.ReadFile(filepath.Join(proc, "sys", "net", "ipv4", name)); err == nil {
				m[name] = strings.Join(strings.Fields(string(b)), " ")
			}
		}
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and exits with the goroutine
		ch <- result{m: m}
	}()
	r := <-ch
	return r.m, r.err
}
