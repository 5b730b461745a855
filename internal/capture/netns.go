package capture

import (
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tcptrace/tcptrace/internal/ledger"
)

// lookupNetns reads the sysctls of namespace ns with ledger.ReadSysctls,
// the live diagnosis's reader: through this process's namespace for the
// host's, else the first of pids in it, else any path that opens it.
// A namespace that cannot be read has every name Unknown.
func lookupNetns(proc string, host, ns uint32, pids ...uint32) *Netns {
	n := &Netns{Inode: ns}
	var paths []string
	if ns == host {
		paths = append(paths, filepath.Join(proc, "self", "ns", "net"))
	}
	for _, pid := range pids {
		if pid != 0 {
			paths = append(paths, filepath.Join(proc, strconv.FormatUint(uint64(pid), 10), "ns", "net"))
		}
	}
	if at, ok := ledger.FindNetns(proc, ns, paths...); ok {
		if m, err := ledger.ReadSysctls(at); err == nil {
			n.Sysctls, n.Via = m, via(proc, at.Path)
			return n
		}
	}
	n.Sysctls = make(map[string]string, len(ledger.SysctlNames))
	for _, name := range ledger.SysctlNames {
		n.Sysctls[name] = Unknown
	}
	return n
}

// via names how a namespace's sysctls were read: "host" through this
// process's namespace, "setns pid N" through a process's, else "setns PATH".
func via(proc, path string) string {
	if path == filepath.Join(proc, "self", "ns", "net") {
		return "host"
	}
	if rest, ok := strings.CutPrefix(path, filepath.Join(proc)+"/"); ok {
		if pid, ok := strings.CutSuffix(rest, "/ns/net"); ok {
			return "setns pid " + pid
		}
	}
	return "setns " + path
}
