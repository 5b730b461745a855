package owners

import (
	"context"
	"net"
	"os"
	"testing"
)

// TestListeners finds this process's own listening socket, with its port,
// namespace and owner, as ss -ltnp would.
func TestListeners(t *testing.T) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	for _, x := range New("/proc").Listeners() {
		if x.Port == port && x.Owner.PID == uint32(os.Getpid()) {
			if x.Netns == 0 || x.Owner.Comm.String() == "" {
				t.Errorf("listener %+v lacks its netns or comm", x)
			}
			return
		}
	}
	t.Fatalf("own listener on port %d not found", port)
}
