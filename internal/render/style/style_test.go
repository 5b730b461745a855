package style

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
)

func TestDur(t *testing.T) {
	cases := []struct {
		ns   int64
		want string
	}{
		{-1, "-"}, {0, "0ns"}, {999, "999ns"}, {1000, "1.00µs"}, {5387, "5.39µs"},
		{9994, "9.99µs"}, {9995, "10.0µs"}, {27_349, "27.3µs"}, {99_950, "100µs"},
		{227_196, "227µs"}, {999_499, "999µs"}, {999_500, "1.00ms"}, {2_571_610, "2.57ms"},
		{100_139_516, "100ms"}, {999_600_000, "1.00s"}, {1_658_848_970, "1.66s"},
		{59_940_000_000, "59.9s"}, {59_960_000_000, "1m00s"}, {65e9, "1m05s"},
		{3599e9, "59m59s"}, {3600e9, "1h00m"}, {7380e9, "2h03m"}, {86400e9 * 3, "3d00h"},
		{1<<63 - 1, "106752d00h"},
	}
	for _, c := range cases {
		if got := Dur(c.ns, false); got != c.want {
			t.Errorf("Dur(%d) = %q, want %q", c.ns, got, c.want)
		}
	}
	if got := Dur(5387, true); got != "5.39us" {
		t.Errorf("ascii: got %q", got)
	}
}

func TestEndpoint(t *testing.T) {
	cases := []struct {
		a    string
		port uint16
		want string
	}{
		{"127.0.0.1", 80, "127.0.0.1:80"}, {"::1", 443, "[::1]:443"}, {"0.0.0.0", 0, "*"},
		{"10.0.0.1", 0, "10.0.0.1:*"}, {"", 22, "*:22"}, {"::ffff:10.0.0.1", 5, "[::ffff:10.0.0.1]:5"},
	}
	for _, c := range cases {
		var a netip.Addr
		if c.a != "" {
			a = netip.MustParseAddr(c.a)
		}
		if got := Endpoint(a, c.port); got != c.want {
			t.Errorf("Endpoint(%s, %d) = %q, want %q", c.a, c.port, got, c.want)
		}
	}
}

func TestTrunc(t *testing.T) {
	if got := TruncRight("ksoftirqd/1", 7, "…"); got != "ksofti…" {
		t.Errorf("TruncRight = %q", got)
	}
	if got := TruncLeft("192.168.100.200:61234", 12, "…"); got != "…0.200:61234" || Cells(got) != 12 {
		t.Errorf("TruncLeft = %q", got)
	}
	if got := TruncRight("abc", 0, "…"); got != "" {
		t.Errorf("TruncRight to 0 = %q", got)
	}
	if got := TruncRight("abcdef", 1, "~~"); got != "~" {
		t.Errorf("TruncRight with a wider mark = %q", got)
	}
}

func TestCells(t *testing.T) {
	for s, want := range map[string]int{"": 0, "abc": 3, "ESTAB→FIN_WAIT1": 15, "27.3µs": 6, "─── SYN ──▶ │": 13,
		"漢字": 4, "\x1b[1mbold\x1b[0m": 4} {
		if got := Cells(s); got != want {
			t.Errorf("Cells(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestSanitize(t *testing.T) {
	if got := Sanitize("ok name"); got != "ok name" {
		t.Errorf("plain: %q", got)
	}
	if got := Sanitize("a\x1b[31m\xffé\u200b"); got != "a?[31m?é?" {
		t.Errorf("escapes: %q", got)
	}
}

// TestWrap: notes two spaces apart, words one, a note that does not fit
// starts a line, words wider than a line are cut, empty lines left out.
func TestWrap(t *testing.T) {
	st := New(nil, false)
	notes := []Note{{Text: "active close"}, {Text: "TIME_WAIT holds 127.0.0.1:42100 for 60s"}, {Text: "x"}}
	got := Wrap(st, notes, "> ", "  ", 30)
	want := []string{"> active close", "  TIME_WAIT holds", "  127.0.0.1:42100 for 60s  x"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Wrap:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := Wrap(st, []Note{{Text: "abcdefghij"}}, "", "", 4); len(got) != 1 || got[0] != "abcd" {
		t.Errorf("cut: %q", got)
	}
	if got := Wrap(st, []Note{{Text: "  "}}, "first", "", 40); got != nil {
		t.Errorf("no words: %q", got)
	}
}

// TestInk: painting with an Ink is painting with Paint (lipgloss), for
// every style of the palette, with colour on and off.
func TestInk(t *testing.T) {
	for _, color := range []bool{false, true} {
		st := New(nil, color)
		for _, s := range []lipgloss.Style{st.Handshake, st.Established, st.Closing, st.Closed, st.TimeWait,
			st.Reset, st.Active, st.Faint, st.Loss, st.Bold, st.Header, st.Faint.Italic(true)} {
			for _, text := range []string{"", "x", "TIME_WAIT holds [::1]:80 → *:443 …", "a\x1b[31mb"} {
				if got, want := string(st.Ink(s).Paint(nil, text)), st.Paint(s, text); got != want {
					t.Errorf("color %v: Ink paints %q as %q, Paint as %q", color, text, got, want)
				}
			}
		}
	}
}

// TestAppend: the append forms write what the string forms return.
func TestAppend(t *testing.T) {
	for _, ns := range []int64{-1, 0, 999, 5387, 999_500, 59_960_000_000, 7380e9} {
		for _, ascii := range []bool{false, true} {
			b, n := AppendDur([]byte("x"), ns, ascii)
			if s := Dur(ns, ascii); string(b) != "x"+s || n != Cells(s) {
				t.Errorf("AppendDur(%d, %v) = %q, %d; Dur %q", ns, ascii, b, n, s)
			}
		}
	}
	for _, s := range []string{"ok name", "a\x1b[31m\xffé\u200b", "\ufffd\t"} {
		if got := string(AppendSanitized(nil, []byte(s))); got != Sanitize(s) {
			t.Errorf("AppendSanitized(%q) = %q, Sanitize %q", s, got, Sanitize(s))
		}
	}
	ell := NewMark("…")
	for _, s := range []string{"ksoftirqd/1", "漢字漢字漢字", "a\xffbcdefgh", "192.168.100.200:61234"} {
		for w := 0; w < 14; w++ {
			if b, n := AppendTruncRight(nil, s, w, ell); string(b) != TruncRight(s, w, "…") || n != Cells(string(b)) {
				t.Errorf("AppendTruncRight(%q, %d) = %q, %d", s, w, b, n)
			}
			if b, n := AppendTruncLeft(nil, []byte(s), w, ell); string(b) != TruncLeft(s, w, "…") || n != Cells(string(b)) {
				t.Errorf("AppendTruncLeft(%q, %d) = %q, %d", s, w, b, n)
			}
		}
	}
}

// TestNewInked: a remark's width, whatever its text.
func TestNewInked(t *testing.T) {
	for _, s := range []string{"", " ", "active close", "two  spaces", " lead", "trail ", "漢字 x", "tab\there"} {
		if n := NewInked([]byte(s), Ink{}); n.Cells() != Cells(s) {
			t.Errorf("NewInked(%q).Cells() = %d, want %d", s, n.Cells(), Cells(s))
		}
	}
}
