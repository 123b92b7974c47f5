package bcache_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeNamesTestsThatExist: every test, benchmark and fuzz target
// the README names (in backquotes) is defined in the repository. The
// README cites tests as the proof of its claims, and two of its names had
// outlived their tests (one renamed, one removed with the code it
// checked), pointing a reader at nothing.
func TestReadmeNamesTestsThatExist(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	funcs := regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*)\(`)
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcs.FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !defined["TestReadmeNamesTestsThatExist"] {
		t.Fatal("the walk found no tests: run from the module's root")
	}
	cited := regexp.MustCompile("`((?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*)`")
	for _, m := range cited.FindAllSubmatch(readme, -1) {
		if name := string(m[1]); !defined[name] {
			t.Errorf("the README names %s, which no test file defines", name)
		}
	}
}
