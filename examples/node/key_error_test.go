package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMalformedKeyIsNotQuotedInTheError: a key that is not hex (a key
// written in base64, as `openssl rand -base64 32` gives it) is refused
// with an error that quotes none of it: encoding/hex's error names the
// first byte it could not read, a byte of the secret, and the node
// printed it to stderr (its log).
func TestMalformedKeyIsNotQuotedInTheError(t *testing.T) {
	const secret = "q" // the key's byte that is no hex digit
	key := "00112233445566778899aabbccddeef" + secret + "00112233445566778899aabbccddeeff"
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-key", key},
		{"-key-file", file},
		{"-key", strings.Repeat("ab", 16), "-accept-keys", key},
	} {
		_, err := parseFlags(args, io.Discard)
		if err == nil {
			t.Fatalf("%q: no error", args[:len(args)-1])
		}
		if msg := err.Error(); strings.Contains(msg, "'"+secret+"'") || strings.Contains(msg, "U+0071") {
			t.Errorf("%q: error %q quotes a byte of the key", args[:len(args)-1], msg)
		}
	}
}
