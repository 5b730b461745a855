package ledger

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
)

// socketOwners finds, as ss -p does, a process holding each socket inode of
// want through proc/PID/fd/* links ("socket:[INODE]"), and fills its entry.
// It stops as soon as every inode has one. (internal/owners has a table of
// every socket, but it imports this package.)
func socketOwners(proc string, want map[uint32]*events.Owner) {
	d, err := os.Open(proc)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	left := len(want)
	for _, name := range names {
		pid, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		dir := filepath.Join(proc, name)
		f, err := os.Open(filepath.Join(dir, "fd"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		fds, _ := f.Readdirnames(-1)
		f.Close()
		var comm events.Comm
		haveComm := false
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd))
			if err != nil || !strings.HasPrefix(link, "socket:[") || !strings.HasSuffix(link, "]") {
				continue
			}
			ino, err := strconv.ParseUint(link[len("socket:["):len(link)-1], 10, 32)
			if err != nil {
				continue
			}
			o, ok := want[uint32(ino)]
			if !ok || o != nil {
				continue
			}
			if !haveComm {
				b, _ := os.ReadFile(filepath.Join(dir, "comm"))
				comm, haveComm = events.MakeComm(strings.TrimSpace(string(b))), true
			}
			want[uint32(ino)] = &events.Owner{PID: uint32(pid), TID: uint32(pid), Comm: comm, Source: events.OwnerProc}
			if left--; left == 0 {
				return
			}
		}
	}
}
