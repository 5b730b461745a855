// Package nsexec runs a function inside another network namespace, on an
// OS thread of its own, and brings the thread back.
package nsexec

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// In runs fn on a locked OS thread that enters target and comes back (or,
// if it cannot, stays locked and exits with its goroutine). Sockets fn makes
// belong to target and stay there.
func In(target netns.NsHandle, fn func()) error {
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
