package bcache

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
)

// TestAFileTheFileSystemFindsCorruptIsDamage: ext4 and XFS report a
// corruption they find reading a file (a metadata checksum, an extent
// tree) with EUCLEAN or EBADMSG at every read, as a device reports a bad
// block with EIO: the file's damage, which DamageReset moves aside, and
// DamageFail fails New for. Taken for an error that may pass, an
// unattended device never started until someone moved the file by hand.
func TestAFileTheFileSystemFindsCorruptIsDamage(t *testing.T) {
	quickRetries(t)
	for _, tc := range ioFaults {
		if tc.damage != nil {
			continue
		}
		for _, errno := range []syscall.Errno{syscall.EUCLEAN, syscall.EBADMSG} {
			t.Run(fmt.Sprint(tc.name, " ", errno), func(t *testing.T) {
				image := ioFaultImage(t, nil)
				failing := tc.file(image)
				reads := 0
				tc.fail(image, errno, -1, &reads)
				cfg := syncConfig(image, SyncWrite)
				cfg.OnDamage = DamageReset
				c, err := New(cfg)
				loadSnapshot, readLog, readKnownBytes = store.LoadSnapshot, journal.Read, readAtMost
				if err != nil {
					t.Fatalf("DamageReset: New = %v; want the file moved aside", err)
				}
				defer mustClose(t, c)
				if n := c.Stats().DamageResets; n == 0 {
					t.Fatal("DamageReset: no reset counted")
				}
				if aside, _ := filepath.Glob(failing + asideSuffix + "*"); len(aside) != 1 {
					t.Fatalf("DamageReset: %s moved aside as %v", failing, aside)
				}
			})
		}
	}
}
