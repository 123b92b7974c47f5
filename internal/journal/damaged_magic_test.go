package journal

import (
	"os"
	"testing"
)

// TestLastFrameWithADamagedMagicIsDamage: the newest segment's last frame
// with a byte of its magic damaged, its head's sum and its checksum
// whole: no tear leaves that (the magic is written first, and a sector
// not written reads as zeros), as none leaves a damaged head sum with the
// rest checking (TestLastFrameWithADamagedHeadSumIsDamage). It was read
// as a torn end, and Open cut the frame's acknowledged records off the
// disk (found by review).
func TestLastFrameWithADamagedMagicIsDamage(t *testing.T) {
	for i := range len(frameMagic) {
		l, path := open(t, EveryWrite)
		appendAll(t, l, 0, 5)
		l.Close(false)
		seg, b := segmentBytes(t, path, 1)
		starts := frameStarts(t, b)
		b[starts[len(starts)-1]+i] ^= 0x10
		if err := os.WriteFile(seg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		mustBeDamaged(t, path)
	}
}

// TestLastFrameWithAZeroedMagicIsATornEnd: a magic whose bytes are zeros
// in part (a sector that was not written, the frame's head straddling
// sectors) is still a torn end.
func TestLastFrameWithAZeroedMagicIsATornEnd(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 5)
	l.Close(false)
	seg, b := segmentBytes(t, path, 1)
	starts := frameStarts(t, b)
	last := starts[len(starts)-1]
	b[last], b[last+1] = 0, 0
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	recs, st := mustRead(t, path)
	if len(recs) != 4 || st.Torn == 0 {
		t.Fatalf("read %v, %+v; want k0-k3 and a torn end", keys(recs), st)
	}
}
