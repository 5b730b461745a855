package ledger

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/testutil"
)

// TestTimeWaitCookie closes a loopback connection from the client side and
// finds its timewait socket in the kernel's table with the client socket's
// own cookie, local port and destination: the join tcptrace relies on.
func TestTimeWaitCookie(t *testing.T) {
	testutil.RequirePrivileged(t)
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cookie := probe.CookieOf(c.(*net.TCPConn))
	local := c.LocalAddr().(*net.TCPAddr)
	c.Close() // the client closes first: it will hold TIME_WAIT
	io.Copy(io.Discard, s)
	s.Close()
	time.Sleep(50 * time.Millisecond)

	p := NewPoller("/proc", time.Hour)
	defer p.Close()
	self := inode("/proc/self/ns/net")
	if !p.Watch(self) {
		t.Fatalf("cannot watch netns %d", self)
	}
	p.PollOnce()
	snaps := p.Take()
	if len(snaps) != 1 || snaps[0].Err != nil {
		t.Fatalf("snapshots %+v", snaps)
	}
	var found *Socket
	for i := range snaps[0].TimeWait {
		if snaps[0].TimeWait[i].Cookie == cookie {
			found = &snaps[0].TimeWait[i]
		}
	}
	if found == nil {
		t.Fatalf("no timewait socket with cookie %d among %d", cookie, len(snaps[0].TimeWait))
	}
	if found.State != events.TimeWait || int(found.Sport) != local.Port || found.Dport != uint16(l.Addr().(*net.TCPAddr).Port) {
		t.Errorf("timewait socket %+v, want TIME_WAIT from port %d", *found, local.Port)
	}
	if found.Expires <= 50*time.Second || found.Expires > 60*time.Second {
		t.Errorf("expires in %v, want just under 60s", found.Expires)
	}
	if snaps[0].Sysctls["ip_local_port_range"] == "" {
		t.Errorf("no sysctls read: %v", snaps[0].Sysctls)
	}
}
