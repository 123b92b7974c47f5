// Package netstat reads the kernel's network counters that the
// benchmarks report beside their own: what the kernel dropped is counted
// nowhere else.
package netstat

import (
	"os"
	"strconv"
	"strings"
)

// UDPRcvbufErrors returns the datagrams the kernel dropped, machine-wide,
// because a socket's receive buffer was full (Linux: RcvbufErrors in
// /proc/net/snmp); false where it cannot tell.
func UDPRcvbufErrors() (uint64, bool) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, false
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(f) {
				n, err := strconv.ParseUint(f[i], 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}
