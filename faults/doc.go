// Package faults is bcache's fault-injection suite: real examples/node
// processes, each in a network namespace of its own, joined by bridges in
// a namespace of their own (nothing on the host changes), under
// partitions, packet loss, SIGKILL and restarts, SIGSTOP and SIGCONT and
// clock offsets, and a checker that classifies the fate of every
// acknowledged write on every member. The package has only tests; see
// faults_test.go for the schedules, and the README's "Fault injection"
// section for how to run them and the figures.
//
// It needs root and the ip command (iproute2); packet loss also needs nft
// (nftables), and is left out, said so in the log, without it. Without
// root or ip the tests skip.
package faults
