package testutil

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The kernel skips a program's run when it would nest on a CPU where the
// same program already runs (its recursion guard), and a flood of
// transitions makes that common. A test that expects exact transitions
// would then miss one of its own now and then while another package's
// flood runs beside it (go test runs packages in parallel). So privileged
// tests hold a machine-wide lock shared, and floods hold it alone: a flood
// runs when no exact test runs, and the reverse.

// lockPath is the lock's file, the same for every test process.
var lockPath = filepath.Join(os.TempDir(), "tcptrace-kernel-tests.lock")

var (
	locksMu sync.Mutex
	locks   = map[testing.TB]*os.File{} // each test's lock, held until its end
)

// shareKernel holds the kernel lock shared until t ends.
func shareKernel(t testing.TB) { lockKernel(t, unix.LOCK_SH) }

// Flood holds the kernel lock alone until t ends: no other privileged test
// runs while t floods the kernel with transitions. Call it after
// RequirePrivileged.
func Flood(t testing.TB) {
	t.Helper()
	lockKernel(t, unix.LOCK_EX)
}

// lockKernel takes (or converts t's) lock to how (LOCK_SH or LOCK_EX).
func lockKernel(t testing.TB, how int) {
	t.Helper()
	locksMu.Lock()
	f := locks[t]
	if f == nil {
		var err error
		if f, err = os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o666); err != nil {
			locksMu.Unlock()
			t.Fatalf("opening the kernel test lock: %v", err)
		}
		locks[t] = f
		t.Cleanup(func() {
			locksMu.Lock()
			delete(locks, t)
			locksMu.Unlock()
			f.Close() // releases the lock
		})
	}
	locksMu.Unlock()
	// flock converts a held lock by dropping it first, so two processes
	// converting at once do not deadlock.
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err == nil {
			return
		}
		if err != unix.EINTR {
			t.Fatalf("taking the kernel test lock: %v", err)
		}
	}
}
