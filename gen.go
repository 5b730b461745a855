// Package tcptrace holds the go:generate line that compiles bpf/tcptrace.c;
// the generated loader lives in internal/probe.
package tcptrace

//go:generate go tool bpf2go -go-package probe -output-dir internal/probe -target bpfel -type event -type record -cflags "-O2 -g -Wall -Werror -mcpu=v3" tcptrace bpf/tcptrace.c -- -I./bpf
