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

// readSysctls reads SysctlNames inside the namespace at path.
func readSysctls(proc, path string) (map[string]string, error) {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer target.Close()
	m := make(map[string]string, len(SysctlNames))
	err = inNetns(target, func() {
		for _, name := range SysctlNames {
			if b, err := os.ReadFile(filepath.Join(proc, "sys", "net", "ipv4", name)); err == nil {
				m[name] = strings.Join(strings.Fields(string(b)), " ")
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// inNetns runs fn on a locked thread that enters target and comes back (or,
// if it cannot, stays locked and exits with its goroutine).
func inNetns(target netns.NsHandle, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering netns: %w", err)
			return
		}
		fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and exits with the goroutine
		errc <- nil
	}()
	return <-errc
}
