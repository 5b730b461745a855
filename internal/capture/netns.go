package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxNetnsScan bounds the processes looked at to find one in a namespace.
const maxNetnsScan = 1 << 15

// NetnsInode returns the inode of the network namespace of /proc/<pid>
// ("self" for this process), as events carry it in Event.Netns.
func NetnsInode(proc, pid string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(proc, pid, "ns", "net"), &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

// readSysctls reads the TIME_WAIT sysctls as this thread sees them.
func readSysctls(proc string) (map[string]string, bool) {
	m := make(map[string]string, len(Sysctls))
	any := false
	for _, name := range Sysctls {
		b, err := os.ReadFile(filepath.Join(proc, "sys", "net", "ipv4", name))
		if err != nil {
			m[name] = Unknown
			continue
		}
		m[name] = strings.Join(strings.Fields(string(b)), " ")
		any = true
	}
	return m, any
}

// lookupNetns reads the sysctls of namespace ns: directly for the host's,
// otherwise by entering it, on a locked thread, through the first of pids,
// or else any process, found in it. Unreadable values are Unknown.
func lookupNetns(proc string, host, ns uint32, pids ...uint32) *Netns {
	n := &Netns{Inode: ns}
	if ns == host {
		if m, ok := readSysctls(proc); ok {
			n.Sysctls, n.Via = m, "host"
			return n
		}
	}
	for _, pid := range append(pids, findInNetns(proc, ns)) {
		if pid == 0 {
			continue
		}
		p := strconv.FormatUint(uint64(pid), 10)
		if got, err := NetnsInode(proc, p); err != nil || got != ns {
			continue
		}
		if m, err := sysctlsIn(proc, filepath.Join(proc, p, "ns", "net")); err == nil {
			n.Sysctls, n.Via = m, "setns pid "+p
			return n
		}
	}
	n.Sysctls = unknownSysctls()
	return n
}

func unknownSysctls() map[string]string {
	m := make(map[string]string, len(Sysctls))
	for _, name := range Sysctls {
		m[name] = Unknown
	}
	return m
}

// findInNetns returns a process in namespace ns, or 0.
func findInNetns(proc string, ns uint32) uint32 {
	d, err := os.Open(proc)
	if err != nil {
		return 0
	}
	defer d.Close()
	names, _ := d.Readdirnames(maxNetnsScan)
	for _, name := range names {
		pid, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		if got, err := NetnsInode(proc, name); err == nil && got == ns {
			return uint32(pid)
		}
	}
	return 0
}

// sysctlsIn reads the sysctls inside the namespace at nsPath, from a
// goroutine locked to its own thread; the thread is left to die if it
// cannot return to its namespace.
func sysctlsIn(proc, nsPath string) (map[string]string, error) {
	type result struct {
		m   map[string]string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(filepath.Join(proc, "thread-self", "ns", "net"))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer self.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("entering %s: %w", nsPath, err)}
			return
		}
		m, ok := readSysctls(proc)
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: stay locked, the thread exits with the goroutine
		if !ok {
			ch <- result{err: fmt.Errorf("no sysctls readable in %s", nsPath)}
			return
		}
		ch <- result{m: m}
	}()
	r := <-ch
	return r.m, r.err
}
