package probe

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MinKernel is the oldest kernel tcptrace runs on: bpf_get_socket_cookie in
// tracing programs arrived in 5.12 (ring buffer 5.8, tp_btf 5.5).
var MinKernel = [2]int{5, 12}

// BTFPath is where the kernel exposes its own BTF.
const BTFPath = "/sys/kernel/btf/vmlinux"

const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkSystem explains, before any load fails cryptically, what is missing.
func checkSystem() error {
	if err := CheckKernel(); err != nil {
		return err
	}
	if _, err := os.Stat(BTFPath); err != nil {
		return fmt.Errorf("kernel BTF not found at %s: tcptrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y", BTFPath)
	}
	return CheckCapabilities()
}

// CheckKernel fails on kernels older than MinKernel.
func CheckKernel() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("reading kernel version: %w", err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	maj, min, ok := parseRelease(rel)
	if !ok {
		return nil // unknown format: let the load decide
	}
	if maj < MinKernel[0] || maj == MinKernel[0] && min < MinKernel[1] {
		return fmt.Errorf("kernel %s is too old: tcptrace needs Linux %d.%d or newer (BPF ring buffer, tp_btf, socket cookies in tracing programs)", rel, MinKernel[0], MinKernel[1])
	}
	return nil
}

func parseRelease(rel string) (int, int, bool) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err1 := strconv.Atoi(parts[0])
	minStr := parts[1]
	if i := strings.IndexFunc(minStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minStr = minStr[:i]
	}
	min, err2 := strconv.Atoi(minStr)
	return maj, min, err1 == nil && err2 == nil
}

// ErrCapabilities is wrapped by the error CheckCapabilities returns.
var ErrCapabilities = errors.New("missing capabilities")

// CheckCapabilities fails unless the process has CAP_BPF and CAP_PERFMON
// (or CAP_SYS_ADMIN), naming what is missing.
func CheckCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(capSysAdmin) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w %s: run as root, or grant them (setcap cap_bpf,cap_perfmon+ep tcptrace; in a container --cap-add BPF --cap-add PERFMON)", ErrCapabilities, strings.Join(missing, " and "))
}
