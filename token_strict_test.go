package bcache

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
)

// TestGetAfterWakesWhenAnAnswerBuriesATombstoneHere: a reader waiting for
// a write this member never got, whose key it holds only as an older
// tombstone, is settled when a peer's answer (package lww, rule 3: a
// tombstone of node 0 above the peer's watermark, which anti-entropy
// brings) lands over that tombstone above the token: the write is dead.
// The store reported no event for an answer over a dead record (so as
// not to show subscribers a drop of nothing), and so the waiting reader
// was not woken either: it learned it at its next pull, up to an
// anti-entropy interval later (found by review).
func TestGetAfterWakesWhenAnAnswerBuriesATombstoneHere(t *testing.T) {
	c := newCache(t, testConfig("solo"))
	c.pullAfter = time.Hour // no pull: the answer alone ends the wait
	del, err := c.DeleteWithToken("k")
	if err != nil {
		t.Fatal(err)
	}
	older, err := del.parse("k")
	if err != nil {
		t.Fatal(err)
	}
	want := crdt.Timestamp{Wall: older.Wall + 1000, Node: 99} // a write after the delete, never here
	tok := newToken(crdt.Record{Key: "k", Time: want})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := getAfterInBackground(ctx, c, "k", tok)
	await.Until(t, 5*time.Second, func() bool {
		c.feed.mu.Lock()
		defer c.feed.mu.Unlock()
		return c.feed.waiting == 1
	}, "the reader does not wait")
	answer := crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: want.Wall + 1}} // node 0
	if o := c.store.Apply(answer, false, c.phys()); o != crdt.Applied {
		t.Fatalf("the answer was not applied: %v", o)
	}
	select {
	case r := <-done:
		if r.ok || r.err != nil {
			t.Fatalf("after the answer: found %v, %v; want a miss", r.ok, r.err)
		}
	case <-ctx.Done():
		t.Fatal("the reader still waits after an answer above its token buried the key here")
	}
}

// TestTokenParseIsStrict: a token is read only as SetWithToken or
// DeleteWithToken spells it: one version has one token. The decoder took
// line breaks anywhere in it, nonzero bits past the last byte, and
// varints padded with continuation bytes, so that many strings named one
// write and "Bcache-Token: AB\nCD..." was a token (found by review).
func TestTokenParseIsStrict(t *testing.T) {
	// 16 bytes: 9 of the wall, 1 of the counter, 2 of the node, 4 of the
	// key; in 22 characters, the last of which carries 4 bits past them.
	rec := crdt.Record{Key: "k", Time: crdt.Timestamp{Wall: 1_700_000_000_000_000_000, Logical: 3, Node: 300}}
	tok := newToken(rec)
	if got, err := tok.parse("k"); err != nil || got != rec.Time || len(tok) != 22 {
		t.Fatalf("the token itself: %q (%d characters) %v, %v", tok, len(tok), got, err)
	}
	padded := binary.AppendVarint(nil, rec.Time.Wall)
	padded = append(padded, 0x83, 0x00) // the counter, 3, in two bytes rather than one
	padded = binary.AppendUvarint(padded, uint64(rec.Time.Node))
	padded = binary.LittleEndian.AppendUint32(padded, uint32(crdt.HashKey("k")))
	for name, forged := range map[string]Token{
		"a line break inside": tok[:5] + "\n" + tok[5:],
		"a CR LF at the end":  tok + "\r\n",
		"a varint padded":     Token(base64.RawURLEncoding.EncodeToString(padded)),
		"bits past the last byte": func() Token {
			b := []byte(tok)
			last := b[len(b)-1]
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			for j := range alphabet {
				if alphabet[j] == last {
					b[len(b)-1] = alphabet[j^1] // its lowest bit, past the 16 bytes
					break
				}
			}
			return Token(b)
		}(),
	} {
		if forged == tok {
			t.Fatalf("%s: no change", name)
		}
		got, err := forged.parse("k")
		if !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: %q parses as %v, %v; want ErrBadToken", name, forged, got, err)
		}
	}
}
