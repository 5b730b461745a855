package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestFlagErrorOnce: the CLI names the flag once, whether the library's
// error names it already or not.
func TestFlagErrorOnce(t *testing.T) {
	for _, lib := range []string{
		`want all, aggregate or a socket cookie, got "x"`,
		`--diagram: want all, aggregate or a socket cookie, got "x"`,
		`--diagram "x": want all, aggregate or a socket cookie`,
	} {
		got := flagError("--diagram", errors.New(lib)).Error()
		if !strings.HasPrefix(got, "--diagram") || strings.Count(got, "--diagram") != 1 {
			t.Errorf("%q: %q", lib, got)
		}
	}
	if got := flagError("--netns", errors.New(`--netns-ish`)).Error(); got != "--netns: --netns-ish" {
		t.Errorf("another name's prefix: %q", got)
	}
}

// TestBadFlagValueMessages: a bad value of a flag whose value a library
// parses gives one line that names the flag once, and exit status 2,
// before anything else is printed (a replay's description of its capture
// included).
func TestBadFlagValueMessages(t *testing.T) {
	for flag, args := range map[string][]string{
		"--diagram":   {"-r", sample, "--diagram=x"},
		"--netns":     {"-r", sample, "--netns", "nope"},
		"--container": {"report", "-r", sample, "--container", "ab"},
	} {
		cmd := exec.Command(binary, args...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: exit %v, want status 2", args, err)
		}
		msg := strings.TrimSpace(errb.String())
		if !strings.HasPrefix(msg, "tcptrace: "+flag) || strings.Count(msg, flag) != 1 || strings.Contains(msg, "\n") {
			t.Errorf("%v: want one line naming %s once, got %q", args, flag, msg)
		}
	}
}
