// Command tcptrace traces every TCP state change on the host, attributed to
// the process that owns each socket, and names the active closer of every
// connection.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// legend explains the marks of the output, in --help (the README's
// "Reading the output").
//
//go:embed legend.txt
var legend string

func main() {
	if err := newRoot().ExecuteContext(context.Background()); err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		fmt.Fprintf(os.Stderr, "tcptrace: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// exitError ends the program with a status and no further message.
type exitError int

// Error says the status.
func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRoot() *cobra.Command {
	var f flags
	var cf captureFlags
	cmd := &cobra.Command{
		Use:   "tcptrace [flags]",
		Short: "Trace every TCP state change, owned by the right process, with the active closer named",
		Long: `tcptrace streams every TCP state transition on this host from the kernel
(tp_btf/inet_sock_set_state), attributed to the process that owns the socket
(not the task a softirq happened to interrupt), and says for each finished
connection who closed first: the active closer, whose side holds TIME_WAIT.

It traces until Ctrl-C, SIGTERM or --duration, then prints a summary.
With -w it also records a capture; -r (or "tcptrace replay FILE") replays one
anywhere, without privileges, exactly as the live run showed it. As with
tcpdump, -w - writes the capture to standard output (and nothing else) and
-r - reads one from standard input.

` + legend,
		Example: `  tcptrace                          # every transition, live
  tcptrace --port 6379 --duration 30s
  tcptrace --json > transitions.jsonl
  tcptrace --comm redis-server --state TIME_WAIT
  tcptrace -w incident.tcpt -C 100MiB -W 5
  tcptrace --port 6379 --port 8080 --host 10.0.0.0/8
  tcptrace -r incident.tcpt --port 6379
  tcptrace -w - --port 6379 | tcptrace -r - --diagram`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := check(cmd, &f, &cf); err != nil {
				return err
			}
			return f.startProfile()
		},
		PersistentPostRun: func(*cobra.Command, []string) { f.stopProfile() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cf.read != "" {
				return runReplay(&f, &cf)
			}
			return runLive(cmd.Context(), &f, &cf)
		},
	}
	f.register(cmd.PersistentFlags())
	diag.register(cmd.PersistentFlags())
	cf.register(cmd.Flags())

	replay := &cobra.Command{
		Use:   "replay FILE",
		Short: "Replay a capture (same as -r FILE; - reads standard input); needs no privileges",
		Example: `  tcptrace replay incident.tcpt
  tcptrace replay --json --port 6379 incident.tcpt`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("replay: want one capture file (- for standard input), got %d arguments", len(args))
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(_ *cobra.Command, args []string) error {
			cf.read = args[0]
			return runReplay(&f, &cf)
		},
	}
	cmd.AddCommand(replay)
	for _, sub := range subcommands {
		cmd.AddCommand(sub(&f))
	}
	usageErrors(cmd)
	return cmd
}

// usageErrors makes the flag and argument errors of cmd and its
// subcommands usage errors (exit status 2), a bad value said as what the
// flag accepts.
func usageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagParseError(err) })
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		usageErrors(sub)
	}
}

// subcommands are added by the files that implement them (report, serve...),
// each from an init function; they share the root's persistent flags.
var subcommands []func(*flags) *cobra.Command
