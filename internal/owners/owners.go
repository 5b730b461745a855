// Package owners finds the processes that own sockets from /proc, as ss -p
// does: for sockets that predate tracing, whose owner the kernel never saw.
package owners

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/ledger"
)

// MinRescan is the shortest time between two scans of /proc.
const MinRescan = time.Second

// Table maps socket inodes to their owning processes.
type Table struct {
	mu       sync.Mutex
	root     string
	byInode  map[uint64]events.Owner
	lastScan time.Time
}

// New returns a table reading the proc filesystem mounted at root ("/proc").
func New(root string) *Table {
	return &Table{root: root, byInode: map[uint64]events.Owner{}}
}

// Resolve finds the owner of ev's socket by its inode, rescanning /proc at
// most once per MinRescan. It implements events.Resolver.
func (t *Table) Resolve(ev *events.Event) (events.Owner, bool) {
	if ev.Inode == 0 {
		return events.Owner{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if o, ok := t.byInode[ev.Inode]; ok {
		return o, true
	}
	if time.Since(t.lastScan) < MinRescan {
		return events.Owner{}, false
	}
	t.scan()
	o, ok := t.byInode[ev.Inode]
	return o, ok
}

// scan rebuilds the inode table from /proc/*/fd.
func (t *Table) scan() {
	t.lastScan = time.Now()
	m := make(map[uint64]events.Owner, len(t.byInode))
	ledger.SocketFds(t.root, func(ino uint64, o events.Owner) bool {
		if _, seen := m[ino]; !seen {
			m[ino] = o
		}
		return true
	})
	t.byInode = m
}

// Listener is a listening TCP socket found in /proc.
type Listener struct {
	Netns  uint32
	Port   uint16
	Family uint16 // AF_INET or AF_INET6, the socket's own
	Owner  events.Owner
}

const (
	afInet  = 2
	afInet6 = 10
)

// Listeners returns the listening TCP sockets of every network namespace
// that some process is in, with their owners.
func (t *Table) Listeners() []Listener {
	t.mu.Lock()
	t.scan()
	byInode := t.byInode
	t.mu.Unlock()

	var out []Listener
	seen := map[uint32]bool{}
	pids, _ := filepath.Glob(filepath.Join(t.root, "[0-9]*"))
	for _, dir := range pids {
		link, err := os.Readlink(filepath.Join(dir, "ns", "net"))
		if err != nil {
			continue
		}
		ns, ok := nsInode(link)
		if !ok || seen[ns] {
			continue
		}
		seen[ns] = true
		if socks, err := ledger.Listening(filepath.Join(dir, "ns", "net")); err == nil {
			for _, so := range socks {
				if o, ok := byInode[uint64(so.Inode)]; ok {
					out = append(out, Listener{Netns: ns, Port: so.Sport, Family: so.Family, Owner: o})
				}
			}
			continue
		}
		// No sock_diag (module not loaded, or no setns): the text table.
		for i, f := range []string{"tcp", "tcp6"} {
			family := [...]uint16{afInet, afInet6}[i]
			for _, l := range listening(filepath.Join(dir, "net", f)) {
				if o, ok := byInode[l.inode]; ok {
					out = append(out, Listener{Netns: ns, Port: l.port, Family: family, Owner: o})
				}
			}
		}
	}
	return out
}

// nsInode parses "net:[4026531840]".
func nsInode(link string) (uint32, bool) {
	i := strings.IndexByte(link, '[')
	if i < 0 || !strings.HasSuffix(link, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(link[i+1:len(link)-1], 10, 32)
	return uint32(n), err == nil
}

type listenRow struct {
	port  uint16
	inode uint64
}

// listening reads the LISTEN rows (st 0A) of a /proc/net/tcp{,6} file.
func listening(path string) []listenRow {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var rows []listenRow
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	var fields [10][]byte
	for sc.Scan() {
		// Split without allocating: a host in trouble has tens of
		// thousands of TIME_WAIT rows here, and only LISTEN rows count.
		n := 0
		for line := sc.Bytes(); n < len(fields); {
			line = bytes.TrimLeft(line, " ")
			if len(line) == 0 {
				break
			}
			end := bytes.IndexByte(line, ' ')
			if end < 0 {
				end = len(line)
			}
			fields[n], line = line[:end], line[end:]
			n++
		}
		if n < 10 || string(fields[3]) != "0A" {
			continue
		}
		local := fields[1]
		colon := bytes.LastIndexByte(local, ':')
		if colon < 0 {
			continue
		}
		port, err1 := strconv.ParseUint(string(local[colon+1:]), 16, 16)
		ino, err2 := strconv.ParseUint(string(fields[9]), 10, 64)
		if err1 != nil || err2 != nil || ino == 0 {
			continue
		}
		rows = append(rows, listenRow{port: uint16(port), inode: ino})
	}
	return rows
}
