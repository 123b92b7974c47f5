// Package faults is bcache's fault-injection suite: real examples/node
// processes, each in a network namespace of its own, joined by bridges in
// a namespace of their own (nothing on the host changes), under
// partitions, packet loss, SIGKILL and restarts, SIGSTOP and SIGCONT and
// clock offsets, and a checker that classifies the fate of every
// acknowledged write on every member, by the versions the members
// answered with: of a key's acknowledged ops, the one with the greatest
// version must win; without a clock offset (the members share the
// kernel's clock) those versions must also rise in the order the ops were
// sent, or the key is misordered. The package has only tests; see faults_test.go for
// the schedules, and the README's "Fault injection" section for how to
// run them and the figures.
//
// A member whose clock is beyond MaxClockDrift ahead has its writes
// refused by the others only until they are within MaxClockDrift of the
// others' clocks; then they win over the others' writes of lower version,
// sent up to the offset later. A run is judged at the heal, when they are
// refused; the checker models when they are taken (see op and classify in
// check_test.go), and TestBeyondDriftWritesWinLater (-faults.late) judges
// a run again once they are.
//
// The tests are built for Linux alone. They need root, the ip command
// (iproute2) and the right to create network namespaces (tried first);
// packet loss also needs nft (nftables), and is left out, said so in the
// log, without it. Without root, ip or that right the tests skip. A test
// process that ends without its cleanups (-timeout, a panic, SIGKILL)
// leaves no process, namespace or directory behind: see TestMain.
package faults
