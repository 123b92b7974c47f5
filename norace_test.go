//go:build !race

package bcache

// raceEnabled says the race detector is on: heavy tests run shorter.
const raceEnabled = false
