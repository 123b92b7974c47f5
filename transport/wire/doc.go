// Package wire holds the messages of bcache's sync protocol and their codec:
// what travels between members, and nothing of the protocol's state. Package
// transport runs the protocol; this package only says how its messages look
// as bytes (the grammar is written out in codec.go).
//
// Decoding is defensive: a frame is size-capped, then decoded field by
// field against the message's grammar, every length checked against the
// bytes that remain before anything is allocated for it. Bad input
// gets an error wrapping one of the sentinels ([ErrMalformed],
// [ErrTooLarge], [ErrVersion], [ErrUnknownKind]), never a panic and never
// a partial message. A [Codec] is not safe for concurrent use.
package wire
