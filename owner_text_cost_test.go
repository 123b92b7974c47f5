package bcache

import (
	"runtime"
	"strings"
	"testing"
)

// TestOwnerTextReadsWhatItShows: an owner's error text as large as a
// frame (a key holder's answer: up to 20 MiB) costs its asker what the
// caller is shown, maxOwnerText bytes, to sanitize. The whole text was
// made valid UTF-8 and mapped rune by rune before it was cut: 16 MiB of
// invalid bytes and newlines allocated about 170 MB and cost about 0.6 s
// of CPU, per answer (found by review).
func TestOwnerTextReadsWhatItShows(t *testing.T) {
	text := strings.Repeat("\xff\n", 8<<20)
	want := ownerText(text[:4*maxOwnerText]) // what a text cut short shows
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := ownerText(text)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("ownerText of a %d-byte text allocated %d bytes; it shows %d", len(text), n, len(got))
	}
	if got != want || !strings.HasSuffix(got, "...") || len(got) > maxOwnerText+len("...") {
		t.Errorf("ownerText of a %d-byte text = %.40q... (%d bytes), want %.40q... (%d bytes)", len(text), got, len(got), want, len(want))
	}
}
