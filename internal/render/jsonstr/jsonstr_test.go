package jsonstr

import (
	"encoding/json"
	"math/rand"
	"testing"
)

// TestAppendAsEncodingJSON: Append writes what json.Marshal writes, for
// hand-picked strings and random bytes.
func TestAppendAsEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", "q\"b\\s", "\x00\x1b[31m\x7f", "\b\f\n\r\t", "<a>&amp;", "naïve",
		"\xff\xfe", "日本", "a\u2028b\u2029c", "\xe2\x80", "python3", "x\xc0\xafy"}
	const alphabet = "a<\"\\\x01\xe2\x80\xa8\xff é"
	rng := rand.New(rand.NewSource(1))
	for range 2000 {
		b := make([]byte, rng.Intn(24))
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("Append(%q) = %s, want %s", s, got[1:], want)
		}
		if got := Append(nil, []byte(s)); string(got) != string(want) {
			t.Errorf("Append([]byte(%q)) = %s, want %s", s, got, want)
		}
	}
}
