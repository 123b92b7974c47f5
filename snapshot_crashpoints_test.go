package bcache

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
)

// TestEveryCrashPointOfASnapshotCycleLosesNothing: a crash image is taken
// before and after each file a snapshot (or Close) writes (the members
// file before it, the snapshot, the members file after it), and at each
// step of the segments' removal; writes are acknowledged (SyncWrite) in
// between. Each image starts, holds every write acknowledged before it was
// taken, and no key deleted.
func TestEveryCrashPointOfASnapshotCycleLosesNothing(t *testing.T) {
	for _, closing := range []bool{false, true} {
		t.Run(fmt.Sprintf("close=%v", closing), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.snap")
			a := mustNew(t, syncConfig(path, SyncWrite))
			mustSet(t, a, "gone")
			mustSet(t, a, "s1")
			mustSnapshot(t, a)
			if err := a.Delete("gone"); err != nil {
				t.Fatal(err)
			}
			mustSet(t, a, "l1")
			mustSnapshot(t, a) // a log of more than one segment, below
			mustSet(t, a, "l2")
			type image struct {
				path  string
				acked []string
				what  string
			}
			var images []image
			acked := []string{"s1", "l1", "l2"}
			n := 0
			take := func(what string) {
				images = append(images, image{crashImage(t, path), append([]string(nil), acked...), what})
				if !closing {
					n++
					k := "w" + strconv.Itoa(n)
					if err := a.Set(k, []byte("v"), 0); err != nil {
						t.Errorf("Set %s: %v", k, err)
						return
					}
					acked = append(acked, k)
				}
			}
			saveF, saveS := saveFile, saveSnapshot
			defer func() { saveFile, saveSnapshot = saveF, saveS }()
			saveFile = func(p string, w func(io.Writer) error) error {
				take("before members file")
				err := saveF(p, w)
				take("after members file")
				return err
			}
			saveSnapshot = func(s *store.Store, p string, w int64) (int, error) {
				take("before snapshot")
				n, err := saveS(s, p, w)
				take("after snapshot")
				return n, err
			}
			if closing {
				mustClose(t, a)
			} else {
				mustSnapshot(t, a)
				take("after the cycle")
				defer a.Close()
			}
			saveFile, saveSnapshot = saveF, saveS
			// The segments' removal, cut short at each step: from the image
			// taken after the last members file, oldest first (RemoveBefore),
			// newest first at Close.
			last := images[len(images)-2] // "after members file" of the cycle
			if closing {
				last = images[len(images)-1]
			}
			segs, err := journal.Segments(last.path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range segs {
				if !closing && i == len(segs)-1 {
					break // RemoveBefore keeps the segment the snapshot started
				}
				img := crashImage(t, last.path)
				order := segs[:i+1]
				if closing {
					order = segs[len(segs)-1-i:]
				}
				for _, s := range order {
					os.Remove(filepath.Join(filepath.Dir(img), filepath.Base(s.Path)))
				}
				images = append(images, image{img, last.acked, fmt.Sprintf("%d segments removed", i+1)})
			}
			for _, im := range images {
				c, err := New(syncConfig(im.path, SyncWrite))
				if err != nil {
					t.Errorf("%s: New: %v", im.what, err)
					continue
				}
				for _, k := range im.acked {
					if _, ok := c.Get(k); !ok {
						t.Errorf("%s: %s lost", im.what, k)
					}
				}
				if _, ok := c.Get("gone"); ok {
					t.Errorf("%s: a deleted key came back", im.what)
				}
				c.Close()
			}
		})
	}
}

// TestAMembersFileFailingAfterItsSnapshotIsCounted: the members file
// written after a snapshot, naming it and where the log goes on, fails
// (a full disk): the log's segments the snapshot covers stay, and the
// members counted are not kept. The failure is counted in
// Stats.SnapshotErrors, as a snapshot's others are; it was logged alone,
// the snapshot counted as written, and a member whose log could never be
// cut showed no error in its stats.
func TestAMembersFileFailingAfterItsSnapshotIsCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	defer a.Close()
	mustSet(t, a, "k1")
	save := saveFile
	defer func() { saveFile = save }()
	calls := 0
	saveFile = func(p string, w func(io.Writer) error) error {
		calls++
		if calls == 2 { // the one after the snapshot
			return fmt.Errorf("no space left on device")
		}
		return save(p, w)
	}
	before := a.Stats().SnapshotErrors
	_ = a.writeSnapshot()
	saveFile = save
	if calls != 2 {
		t.Fatalf("%d members file writes, want 2", calls)
	}
	segs, _ := journal.Segments(path)
	if len(segs) < 2 {
		t.Fatalf("segments %v: the ones the snapshot covers were removed without the members file", segs)
	}
	if got := a.Stats().SnapshotErrors; got == before {
		t.Errorf("SnapshotErrors %d after the members file beside the snapshot failed: not counted", got)
	}
}
