package journal

import (
	"errors"
	"os"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// TestZeroedLastFramesOfAnOlderSegmentAreDamage: an older segment ends
// where the header of the segment after it says, with its last frame (a
// direct write's padding is cut off, or lies past that length): zeros
// before that length are not padding but frames lost (a block the disk
// lost, read back as zeros). Read took them for a direct write's padding
// whenever the segment's length was a multiple of the block, and dropped
// the acknowledged records of those frames without a word.
func TestZeroedLastFramesOfAnOlderSegmentAreDamage(t *testing.T) {
	l, path := open(t, EveryWrite)
	frameLen := func(r crdt.Record) int { return frameHead + 1 + len(store.AppendRecord(nil, &r)) }
	last := rec(1)
	sB := frameLen(last)
	first := crdt.Record{Key: "k0", Time: crdt.Timestamp{Wall: 1000, Node: 7}}
	for v := 0; headerLen+frameLen(first)+sB < 2*dioAlign; v++ {
		first.Value = make([]byte, v)
	}
	if headerLen+frameLen(first)+sB != 2*dioAlign {
		t.Fatalf("segment of %d bytes, want %d", headerLen+frameLen(first)+sB, 2*dioAlign)
	}
	for _, r := range []crdt.Record{first, last} {
		b, err := l.Append(&r, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	one := segmentPath(path, 1)
	b, err := os.ReadFile(one)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2*dioAlign {
		t.Fatalf("segment 1 is %d bytes, want %d", len(b), 2*dioAlign)
	}
	clear(b[len(b)-sB:]) // the last frame, acknowledged, lost to zeros
	if err := os.WriteFile(one, b, 0o600); err != nil {
		t.Fatal(err)
	}
	recs, _, err := Read(path)
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("an older segment whose acknowledged last frame reads as zeros read as whole: %v, err %v", keys(recs), err)
	}
}
