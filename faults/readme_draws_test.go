//go:build linux

package faults

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestTheReadmesDrawCountsAreWhatTheirSeedsDraw: the README's mixed row names its
// seeds and how many of them drew each fault; -faults.mix=random draws
// the fault from the seed alone (drawScenario), so the counts must be
// what those seeds draw, or the row does not replay.
func TestTheReadmesDrawCountsAreWhatTheirSeedsDraw(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`seeds (\d+)-(\d+): (\d+) none, (\d+) loss, (\d+) at \+20 s, (\d+) at \+2 min`)
	rows := re.FindAllStringSubmatch(string(b), -1)
	if len(rows) == 0 {
		t.Fatal("no mixed row with its draws in the README")
	}
	for _, m := range rows {
		n := make([]int, 6)
		for i := range n {
			n[i], _ = strconv.Atoi(m[i+1])
		}
		var got [4]int
		for s := n[0]; s <= n[1]; s++ {
			sc, _, err := drawScenario(uint64(s), "random")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case sc.loss > 0:
				got[1]++
			case sc.offsets == nil:
				got[0]++
			default:
				for _, d := range sc.offsets {
					if d == 20*time.Second {
						got[2]++
					} else {
						got[3]++
					}
				}
			}
		}
		if want := [4]int{n[2], n[3], n[4], n[5]}; got != want {
			t.Errorf("README %q: seeds %d-%d draw %s", m[0], n[0], n[1],
				fmt.Sprintf("%d none, %d loss, %d at +20 s, %d at +2 min", got[0], got[1], got[2], got[3]))
		}
	}
}
