# Developer entry points beyond `go build` / `go test ./...` (see README.md).
.PHONY: test kernel-matrix kernel-matrix-smoke soak

test:
	go test -count=1 ./...

# tcptrace in VMs booted with Debian's 6.1 and 6.12 kernels (qemu, TCG).
kernel-matrix:
	scripts/kernel-matrix

# The CI subset: one kernel (6.1), smoke workload only.
kernel-matrix-smoke:
	scripts/kernel-matrix --smoke

# A longer soak than the one go test runs (default 6 s per variant).
soak:
	TCPTRACE_SOAK=$${TCPTRACE_SOAK:-2m} go test -count=1 -v -run TestSoak -timeout 30m ./internal/soak

