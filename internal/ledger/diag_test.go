package ledger

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// TestListening finds this process's listening sockets, each with its own
// family and its inode.
func TestListening(t *testing.T) {
	testutil.RequirePrivileged(t)
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	want := map[uint16]uint16{} // port → family
	for network, addr := range map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"} {
		l, err := lc.Listen(context.Background(), network, addr)
		if err != nil {
			if network == "tcp6" {
				continue // no IPv6
			}
			t.Fatal(err)
		}
		defer l.Close()
		fam := uint16(2)
		if network == "tcp6" {
			fam = 10
		}
		want[uint16(l.Addr().(*net.TCPAddr).Port)] = fam
	}
	socks, err := Listening("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, so := range socks {
		if fam, ok := want[so.Sport]; ok && so.Family == fam && so.Inode != 0 && so.State == events.Listen {
			delete(want, so.Sport)
		}
	}
	if len(want) > 0 {
		t.Errorf("listeners not found (port → family): %v among %+v", want, socks)
	}
}

// TestDumpPerFamily checks that the fallback for kernels without the compat
// request (one dump per family) reads the same table.
func TestDumpPerFamily(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := newTestNetns(t)
	if err := ns.pile(800); err != nil {
		t.Fatal(err)
	}
	d, err := openHandle(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, recvBufLen)
	var counts [2]int
	// The pile's last sockets may still be on their way to TIME_WAIT
	// (a loaded machine): walk again until one walk sees them all.
	for try := 0; try < 40; try++ {
		for i, noCompat := range []bool{false, true} {
			d.noCompat = noCompat
			var p Pile
			if err := d.dumpAll(buf, allStates, newBuilder(&p, events.Filter{}, MaxPile, nil)); err != nil {
				t.Fatal(err)
			}
			counts[i] = len(p.Found)
		}
		if counts[0] == ns.TimeWait {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if counts[0] != ns.TimeWait || counts[1] != ns.TimeWait || !d.noCompat {
		t.Errorf("TIME_WAIT %d in one walk, %d per family, want %d", counts[0], counts[1], ns.TimeWait)
	}
}
