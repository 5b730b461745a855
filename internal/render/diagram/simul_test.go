package diagram

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
)

// simulTable is the nftables table that holds both FINs back.
const simulTable = "tcptrace_diagram"

// playSimultaneous forces a simultaneous close in a private netns: with
// nftables dropping the connection's segments, both sides shut down (both
// FIN_WAIT1, FINs lost); the drop is lifted and the retransmitted FINs,
// sent by timers armed together, cross: both go CLOSING, then TIME_WAIT.
// The FINs can still fail to cross (a timer fires alone); it retries.
func playSimultaneous(t *testing.T) *played {
	t.Helper()
	ns := fmt.Sprintf("tcptrace-diag-%d", os.Getpid())
	runCmd(t, "", "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	runCmd(t, "", "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	for attempt := 1; attempt <= 8; attempt++ {
		port := freePort(t)
		r := startDRec(t, port)
		var cfd, sfd int
		var cc, sc uint64
		inNetns(t, ns, func() error {
			var err error
			cfd, sfd, cc, sc, err = socketPair(port)
			return err
		})
		script := fmt.Sprintf("table inet %s {\n chain out {\n  type filter hook output priority 0; policy accept;\n"+
			"  tcp sport %d drop\n  tcp dport %d drop\n }\n}\n", simulTable, port, port)
		runCmd(t, script, "ip", "netns", "exec", ns, "nft", "-f", "-")
		// Back to back, so that both retransmission timers are armed together.
		errC, errS := unix.Shutdown(cfd, unix.SHUT_WR), unix.Shutdown(sfd, unix.SHUT_WR)
		if errC != nil || errS != nil {
			t.Fatalf("shutdown: %v, %v", errC, errS)
		}
		time.Sleep(50 * time.Millisecond)
		runCmd(t, "", "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", simulTable)
		r.waitClosed(t, cc, sc)
		unix.Close(cfd)
		unix.Close(sfd)
		evs := r.stop()
		if entered(evs, cc, events.Closing) && entered(evs, sc, events.Closing) {
			sa := fmt.Sprintf("127.0.0.1:%d", port)
			return &played{evs: evs, closer: "both", timeWait: []string{"both sides"},
				also: []string{"CLOSING", "FINs crossed", sa}}
		}
		t.Logf("attempt %d: the FINs did not cross; again", attempt)
	}
	t.Fatal("no simultaneous close in 8 attempts")
	return nil
}

// entered reports whether the socket entered state.
func entered(evs []events.Event, cookie uint64, state events.State) bool {
	for i := range evs {
		if evs[i].Cookie == cookie && evs[i].New == state && evs[i].Kind == events.KindTransition {
			return true
		}
	}
	return false
}

// socketPair makes a connected client and accepted server socket on
// 127.0.0.1:port of the calling thread's netns (blocking sockets).
func socketPair(port int) (cfd, sfd int, cc, sc uint64, err error) {
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(lfd)
	if err = unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return
	}
	if err = unix.Bind(lfd, sa); err != nil {
		return
	}
	if err = unix.Listen(lfd, 1); err != nil {
		return
	}
	if cfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return
	}
	if err = unix.Connect(cfd, sa); err != nil {
		return
	}
	if sfd, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC); err != nil {
		return
	}
	if cc, err = unix.GetsockoptUint64(cfd, unix.SOL_SOCKET, unix.SO_COOKIE); err != nil {
		return
	}
	sc, err = unix.GetsockoptUint64(sfd, unix.SOL_SOCKET, unix.SO_COOKIE)
	return
}
