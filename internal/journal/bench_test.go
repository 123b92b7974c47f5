package journal

import (
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// BenchmarkAppend: the cost of Append alone, from 16 goroutines, with the
// Interval mode's flushes running.
//
//	go test -run '^$' -bench Append -cpu 2 ./internal/journal
func BenchmarkAppend(b *testing.B) {
	l, err := Open(Options{Path: filepath.Join(b.TempDir(), "snap"), Mode: Interval, Interval: 100 * time.Millisecond}, ReadStats{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(false)
	value := make([]byte, 100)
	var next atomic.Int64
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := crdt.Record{Key: "key:" + strconv.Itoa(int(next.Add(1)%100_000)), Value: value, Time: crdt.Timestamp{Wall: time.Now().UnixNano(), Node: 1}}
			if _, err := l.Append(&r, false); err != nil {
				b.Error(err) // not Fatal: this is not the benchmark's goroutine
				return
			}
		}
	})
}
