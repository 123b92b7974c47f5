//go:build !race

package store

// raceEnabled says the race detector is on: heavy tests run shorter.
const raceEnabled = false
