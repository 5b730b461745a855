package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capability numbers (linux/capability.h).
const (
	capDacReadSearch = 2
	capNetAdmin      = 12
	capSysPtrace     = 19
	capSysAdmin      = 21
	capPerfmon       = 38
	capBPF           = 39
	capLast          = 40 // CAP_CHECKPOINT_RESTORE, the highest in Linux 6.x
)

// keepAfterAttach are the capabilities tcptrace still uses once its program is
// attached and the self-test passed (the others are dropped):
//   - CAP_BPF: every bpf() call — reading the loss counters and program stats,
//     seeding listeners — on kernels with kernel.unprivileged_bpf_disabled set
//     (Debian's default) before 6.5, which checked it at syscall entry.
//   - CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, together: naming the owners of
//     sockets that predate tracing from /proc/<pid>/fd of other processes.
//     Searching /proc/<pid>/fd (mode 0500, the process's uid) needs
//     CAP_DAC_READ_SEARCH; readlink of its entries and of /proc/<pid>/ns/net
//     needs ptrace_may_access, i.e. CAP_SYS_PTRACE (also for processes of
//     the same uid whose permitted capabilities exceed the caller's: even
//     root needs it once the rest is dropped). Measured on Linux 6.18.
//   - CAP_SYS_ADMIN: setns(2) into each network namespace a traced
//     connection lives in, to read its TIME_WAIT table (sock_diag) and its
//     sysctls for the diagnosis; namespaces appear while tracing.
//
// Reading the ring buffer (mmap, epoll) and closing the link need none;
// CAP_PERFMON and CAP_NET_ADMIN are not used after attaching.
var keepAfterAttach = []int{capBPF, capDacReadSearch, capSysPtrace, capSysAdmin}

var capNames = map[int]string{
	capDacReadSearch: "CAP_DAC_READ_SEARCH", capNetAdmin: "CAP_NET_ADMIN", capSysPtrace: "CAP_SYS_PTRACE",
	capSysAdmin: "CAP_SYS_ADMIN", capPerfmon: "CAP_PERFMON", capBPF: "CAP_BPF",
}

func capName(c int) string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("cap %d", c)
}

// errCgoThreads: a cgo build cannot change the capabilities of all threads.
var errCgoThreads = errors.New("capabilities not dropped: this binary uses cgo, whose threads Go cannot reach (build with CGO_ENABLED=0)")

// dropCapabilities reduces the process to the capabilities in keep that it
// holds now: effective and permitted sets, on every thread; the inheritable
// and ambient sets are cleared, and the bounding set loses the rest (when
// CAP_SETPCAP allows it), so no later exec regains them. A process without
// capabilities has nothing to drop and gets nil.
func dropCapabilities(keep ...int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	var want [2]unix.CapUserData
	for _, c := range keep {
		if c < 0 || c > 63 {
			continue
		}
		bit := uint32(1) << (c % 32)
		if cur[c/32].Permitted&bit != 0 {
			want[c/32].Permitted |= bit
			want[c/32].Effective |= bit
		}
	}
	if cur[0].Permitted|cur[1].Permitted|cur[0].Inheritable|cur[1].Inheritable == 0 {
		return nil // nothing held
	}
	hasSetpcap := cur[0].Effective&(1<<unix.CAP_SETPCAP) != 0

	allThreads := func(trap, a1, a2, a3 uintptr) error {
		_, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3)
		switch {
		case e == syscall.ENOTSUP:
			return errCgoThreads
		case e != 0:
			return e
		}
		return nil
	}
	// A harmless call first: a cgo binary cannot run syscalls on all threads.
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, capBPF, 0); err != nil {
		return err
	}
	// Bounding set first: dropping from it needs CAP_SETPCAP, about to go.
	if hasSetpcap {
		kept := map[int]bool{}
		for _, c := range keep {
			kept[c] = true
		}
		for c := 0; c <= capLast; c++ {
			if kept[c] {
				continue
			}
			if err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("dropping %s from the bounding set: %w", capName(c), err)
			}
		}
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&want[0])), 0); err != nil {
		return fmt.Errorf("dropping capabilities: %w", err)
	}
	return nil
}

// ownerCapsNote returns the line that says, when CAP_SYS_PTRACE or
// CAP_DAC_READ_SEARCH is not effective, that the owners of sockets opened
// before tracing began (those of listeners that predate it included) will
// show as unknown, and which capabilities would name them; "" when both
// are held.
func ownerCapsNote() string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return ""
	}
	var missing []string
	for _, c := range []int{capSysPtrace, capDacReadSearch} {
		if cur[c/32].Effective&(1<<(c%32)) == 0 {
			missing = append(missing, capName(c))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "tcptrace: owners of sockets opened before tracing began (pre-existing listeners' too) show as \"? ?\": " +
		"naming them from /proc/*/fd needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH; missing " + strings.Join(missing, " and ")
}
