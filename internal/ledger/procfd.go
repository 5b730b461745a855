package ledger

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
)

// SocketFds walks proc/PID/fd/* as ss -p does and calls fn with the inode of
// every socket a process holds ("socket:[INODE]") and that process as its
// owner, until fn returns false.
func SocketFds(proc string, fn func(ino uint64, o events.Owner) bool) {
	d, err := os.Open(proc)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
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
			ino, err := strconv.ParseUint(link[len("socket:["):len(link)-1], 10, 64)
			if err != nil {
				continue
			}
			if !haveComm {
				b, _ := os.ReadFile(filepath.Join(dir, "comm"))
				comm, haveComm = events.MakeComm(strings.TrimSpace(string(b))), true
			}
			if !fn(ino, events.Owner{PID: uint32(pid), TID: uint32(pid), Comm: comm, Source: events.OwnerProc}) {
				return
			}
		}
	}
}

// socketOwners fills each entry of want (socket inode → nil) with a process
// holding that socket, stopping as soon as every inode has one.
func socketOwners(proc string, want map[uint32]*events.Owner) {
	left := len(want)
	SocketFds(proc, func(ino uint64, o events.Owner) bool {
		if cur, ok := want[uint32(ino)]; ok && cur == nil && ino <= 1<<32-1 {
			want[uint32(ino)] = &o
			left--
		}
		return left > 0
	})
}
