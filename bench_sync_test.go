package bcache

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSyncPolicies: writes a second from 16 concurrent writers (100-
// byte values, 100,000 keys) on a member alone, with no write log
// (SyncNone), a log synced every 100 ms (SyncInterval) and a log synced
// before every write returns (SyncWrite, group commit), in the same run.
// The log lives in the test's temporary directory: on this machine's
// disk, an fsync of a few KiB costs about half a millisecond.
//
//	go test -run '^$' -bench SyncPolicies -benchtime 3s -cpu 2 .
func BenchmarkSyncPolicies(b *testing.B) {
	value := make([]byte, 100)
	for _, policy := range []SyncPolicy{SyncNone, SyncInterval, SyncWrite} {
		b.Run(policy.String(), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "cache.snap")
			c, err := New(Config{BindAddr: "127.0.0.1:0", SnapshotPath: path, SnapshotInterval: -1, Sync: policy})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var next atomic.Int64
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			b.ResetTimer() // New is not a write
			start, cpu := time.Now(), processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.Set("key:"+strconv.Itoa(int(next.Add(1)%100_000)), value, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
			if cpu := processCPU() - cpu; cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/write")
			}
			if st := c.Stats(); policy != SyncNone && st.LogSyncs > 0 {
				b.ReportMetric(float64(st.Logged)/float64(st.LogSyncs), "writes/sync")
			}
			b.StopTimer() // nor is Close, which writes a snapshot
		})
	}
}

// BenchmarkRestartFromLog: New on a snapshot of 100,000 keys and a write
// log of 100,000 more records (as a crash leaves them), until it serves.
//
//	go test -run '^$' -bench RestartFromLog -benchtime 5x .
func BenchmarkRestartFromLog(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "cache.snap")
	a, err := New(Config{BindAddr: "127.0.0.1:0", SnapshotPath: path, SnapshotInterval: -1, Sync: SyncInterval})
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	for i := range n {
		a.Set(fmt.Sprintf("snap:%08d", i), value, 0)
	}
	if err := a.writeSnapshot(); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		a.Set(fmt.Sprintf("log:%08d", i), value, 0)
	}
	if _, err := a.journal.Rotate(); err != nil { // written and synced, as SyncEvery would
		b.Fatal(err)
	}
	image := crashImage(b, path)
	a.Close()
	for b.Loop() {
		b.StopTimer()
		p := crashImage(b, image)
		b.StartTimer()
		c, err := New(Config{BindAddr: "127.0.0.1:0", SnapshotPath: p, SnapshotInterval: -1, Sync: SyncWrite})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st := c.Stats(); st.Restored != n || st.Replayed != n {
			b.Fatalf("restored %d, replayed %d", st.Restored, st.Replayed)
		}
		c.Close()
		b.StartTimer()
	}
}
