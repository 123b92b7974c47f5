package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyFileErrorsNameTheFileFlag: a key file that holds no hex key (a
// raw binary key, base64, a key of the wrong length) is refused with an
// error naming the flag that gave it (-key-file, -accept-keys-file), not
// -key or -accept-keys, which the operator did not pass (the Kubernetes
// manifest passes only the file flags).
func TestKeyFileErrorsNameTheFileFlag(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("ab", 16)
	for name, content := range map[string]string{
		"raw":   "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10",
		"short": strings.Repeat("ab", 15) + "\n",
	} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			args []string
			flag string
		}{
			{[]string{"-key-file", f}, "-key-file"},
			{[]string{"-key", good, "-accept-keys-file", f}, "-accept-keys-file"},
		} {
			_, err := parseFlags(c.args, io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), c.flag+": ") || !strings.Contains(err.Error(), f) {
				t.Errorf("%s in %s: error %v, want one naming %s and the file", name, c.flag, err, c.flag)
			}
		}
	}
}
