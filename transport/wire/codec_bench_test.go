package wire

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/bcache-go/bcache/crdt"
)

// benchRecords is the batch size of the codec benchmarks.
const benchRecords = 100

// benchDelta returns a Delta of benchRecords records with 16-byte keys,
// 100-byte values, realistic timestamps and expiries, as in ANCHORS.md.
func benchDelta() *Delta {
	const wall = 1_764_000_000_000_000_000
	d := &Delta{Origin: "node-1", OriginID: 0x5eed_cafe_f00d_beef, Seq: 42, Records: make([]crdt.Record, benchRecords)}
	for i := range d.Records {
		d.Records[i] = crdt.Record{
			Key:     fmt.Sprintf("key-%012d", i),
			Value:   bytes.Repeat([]byte{byte(i)}, 100),
			Time:    crdt.Timestamp{Wall: wall + int64(i)*1000, Logical: uint32(i % 3), Node: d.OriginID},
			Expires: wall + 60_000_000_000,
		}
	}
	return d
}

// reportPerRecord reports ns and encoded bytes per record over n iterations.
func reportPerRecord(b *testing.B, n, frameLen int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*benchRecords), "ns/record")
	b.ReportMetric(float64(frameLen)/benchRecords, "B/record")
}

func BenchmarkCodecEncodeDelta(b *testing.B) {
	d, c := benchDelta(), NewCodec(Limits{})
	b.ReportAllocs()
	var frame []byte
	var err error
	n := 0
	for b.Loop() {
		if frame, err = c.Encode(frame[:0], d); err != nil {
			b.Fatalf("Encode: got error %v, want nil", err)
		}
		n++
	}
	reportPerRecord(b, n, len(frame))
}

func BenchmarkCodecDecodeDelta(b *testing.B) {
	frame, c := mustEncode(b, benchDelta()), NewCodec(Limits{})
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := c.Decode(frame); err != nil {
			b.Fatalf("Decode: got error %v, want nil", err)
		}
		n++
	}
	reportPerRecord(b, n, len(frame))
}

// BenchmarkCodecPeerMsgpack measures msgpack/v5's reflection codec on the
// same Delta (structs as arrays, reused encoder and decoder), for ratios.
// Its decoder is unsafe on untrusted input; this is a speed reference only.
func BenchmarkCodecPeerMsgpack(b *testing.B) {
	d := benchDelta()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseArrayEncodedStructs(true)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			buf.Reset()
			if err := enc.Encode(d); err != nil {
				b.Fatalf("Encode: got error %v, want nil", err)
			}
			n++
		}
		reportPerRecord(b, n, buf.Len())
	})
	frame := bytes.Clone(buf.Bytes())
	var r bytes.Reader
	dec := msgpack.NewDecoder(&r)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			r.Reset(frame)
			var got Delta
			if err := dec.Decode(&got); err != nil {
				b.Fatalf("Decode: got error %v, want nil", err)
			}
			n++
		}
		reportPerRecord(b, n, len(frame))
	})
}
