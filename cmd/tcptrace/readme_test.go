package main

// The README's examples, run as written: its commands are read from
// README.md itself and their output compared with the blocks it shows.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// readme is README.md's text and its fenced blocks in order.
type readme struct {
	text   string
	blocks []readmeBlock
}

// readmeBlock is one fenced block: its info string and its lines.
type readmeBlock struct {
	info  string
	lines []string
}

func readReadme(t *testing.T) readme {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	r := readme{text: string(raw)}
	var cur *readmeBlock
	for _, l := range strings.Split(r.text, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &readmeBlock{info: strings.TrimPrefix(l, "```")}
		case cur != nil && l == "```":
			r.blocks = append(r.blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, l)
		}
	}
	return r
}

// containing returns the first block with a line holding substr.
func (r readme) containing(t *testing.T, substr string) readmeBlock {
	t.Helper()
	for _, b := range r.blocks {
		for _, l := range b.lines {
			if strings.Contains(l, substr) {
				return b
			}
		}
	}
	t.Fatalf("README: no block with %q", substr)
	return readmeBlock{}
}

// startingWith returns the first block whose first line starts with prefix.
func (r readme) startingWith(t *testing.T, prefix string) readmeBlock {
	t.Helper()
	for _, b := range r.blocks {
		if len(b.lines) > 0 && strings.HasPrefix(b.lines[0], prefix) {
			return b
		}
	}
	t.Fatalf("README: no block starting with %q", prefix)
	return readmeBlock{}
}

// shown returns a block's lines up to a "..." line (the rest left out).
func (b readmeBlock) shown() []string {
	for i, l := range b.lines {
		if l == "..." {
			return b.lines[:i]
		}
	}
	return b.lines
}

// argsOf turns a README command line into the binary's arguments: the
// words after "tcptrace" (or "go run ./cmd/tcptrace"), up to a comment.
func argsOf(t *testing.T, line string) []string {
	t.Helper()
	line, _, _ = strings.Cut(line, "#")
	line = strings.Replace(line, "go run ./cmd/tcptrace", "tcptrace", 1)
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "tcptrace" {
		t.Fatalf("README: %q is not a tcptrace command", line)
	}
	return f[1:]
}

// readmeCmd is the binary with args, run from the repository's root (the
// README's paths are relative to it), colour off.
func readmeCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "TZ=UTC")
	return cmd
}

// checkPrefix fails unless got's first lines are want's, byte for byte.
func checkPrefix(t *testing.T, what string, got []byte, want []string) {
	t.Helper()
	lines := strings.Split(string(got), "\n")
	for i, w := range want {
		if i >= len(lines) || strings.TrimRight(lines[i], " ") != strings.TrimRight(w, " ") {
			g := ""
			if i < len(lines) {
				g = lines[i]
			}
			t.Errorf("%s: line %d is\n  %q\nthe README shows\n  %q", what, i+1, g, w)
			return
		}
	}
}

// checkContains fails unless every line of want is a line of got, in order.
func checkContains(t *testing.T, what string, got []byte, want []string) {
	t.Helper()
	lines := strings.Split(string(got), "\n")
	at := 0
	for _, w := range want {
		for at < len(lines) && strings.TrimRight(lines[at], " ") != strings.TrimRight(w, " ") {
			at++
		}
		if at == len(lines) {
			t.Errorf("%s: the README's line\n  %q\nis not in the output (in order):\n%s", what, w, got)
			return
		}
		at++
	}
}

// TestReadmeFirstLook runs the README's first look as written: the replay
// of the shipped capture on an 80-column terminal, its summary on stderr,
// the same lines off a terminal, the aggregate diagram and the JSON line.
func TestReadmeFirstLook(t *testing.T) {
	r := readReadme(t)
	first := r.blocks[0]
	if len(first.lines) != 1 || !strings.Contains(first.lines[0], "-r internal/capture/testdata/sample.tcpt") {
		t.Fatalf("README: the first block is not the replay of the sample: %q", first.lines)
	}
	args := argsOf(t, first.lines[0])

	cmd := readmeCmd(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := testutil.RunOnTerminal(t, cmd, 80)
	if err != nil {
		t.Fatalf("tcptrace %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	checkPrefix(t, "the replay on a terminal", out, r.blocks[1].shown())
	checkContains(t, "the summary on stderr", stderr.Bytes(), r.startingWith(t, "tcptrace summary").lines)

	piped, err := readmeCmd(args...).Output()
	if err != nil {
		t.Fatalf("tcptrace %s (piped): %v", strings.Join(args, " "), err)
	}
	checkContains(t, "the replay off a terminal", piped, r.containing(t, "active_close=true").lines)

	m := regexp.MustCompile("`(tcptrace -r internal/capture/testdata/sample.tcpt\\s+--diagram=aggregate)`").FindStringSubmatch(r.text)
	if m == nil {
		t.Fatal("README: no aggregate diagram command")
	}
	cmd = readmeCmd(argsOf(t, strings.Join(strings.Fields(m[1]), " "))...)
	out, err = testutil.RunOnTerminal(t, cmd, 80)
	if err != nil {
		t.Fatalf("%s: %v", m[1], err)
	}
	checkPrefix(t, "the aggregate diagram", out, r.startingWith(t, "×301").lines)

	js, err := readmeCmd(append(args, "--json")...).Output()
	if err != nil {
		t.Fatalf("--json: %v", err)
	}
	checkContains(t, "the JSON example", js, r.startingWith(t, `{"type":"transition"`).lines)
}

// TestReadmeModes runs every tcptrace command of the README's modes as
// written, as root, each live one ended after a moment by an added
// --duration: each must exit 0. (kubectl and docker are not run.)
func TestReadmeModes(t *testing.T) {
	testutil.RequirePrivileged(t)
	r := readReadme(t)
	dir := t.TempDir()
	// In README order: the replay of incident.tcpt follows its recording.
	var cmds []string
	for _, b := range r.blocks {
		if b.info != "sh" {
			continue
		}
		for _, l := range b.lines {
			if strings.HasPrefix(l, "tcptrace") {
				cmds = append(cmds, strings.TrimSpace(strings.SplitN(l, "  #", 2)[0]))
			}
		}
	}
	if len(cmds) < 8 {
		t.Fatalf("README: only %d tcptrace commands found: %q", len(cmds), cmds)
	}
	for _, c := range cmds {
		t.Run(c, func(t *testing.T) {
			line := c
			// Every live tracer of the line stops after a moment.
			parts := strings.Split(line, "|")
			for i, p := range parts {
				if !strings.Contains(p, "-r ") {
					parts[i] = strings.TrimSpace(p) + " --duration 300ms"
				}
			}
			line = strings.Join(parts, " | ")
			sh := exec.Command("sh", "-c", line)
			sh.Dir = dir
			sh.Env = append(os.Environ(), "NO_COLOR=1", "PATH="+filepath.Dir(binary)+":"+os.Getenv("PATH"))
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = sh.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				_ = sh.Process.Kill()
				<-done
				t.Fatalf("%s: still running after 60s", line)
			}
			if err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
		})
	}
}
