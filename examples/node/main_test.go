package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyFile := file("key", strings.Repeat("ab", 16)+"\n")
	acceptFile := file("accept", strings.Repeat("cd", 32)+"\n"+strings.Repeat("ef", 24)+",\n")
	emptyFile := file("empty", "\n")
	tests := []struct {
		name    string
		args    []string
		wantErr string // a substring of the error; empty for none
		check   func(options) string
	}{
		{name: "defaults", check: func(o options) string {
			if o.cfg.BindAddr != "127.0.0.1:7946" || o.httpAddr != "127.0.0.1:8080" || o.cfg.Peers != nil ||
				o.cfg.SecretKey != nil || o.cfg.MaxKeys != 0 || o.cfg.MaxValueSize != bcache.DefaultMaxValueSize || o.cfg.Timings != (bcache.Timings{}) ||
				o.cfg.SubscriptionBytes != defaultWatchBytes {
				return fmt.Sprintf("%+v", o)
			}
			return ""
		}},
		{name: "peers", args: []string{"-peers", " 127.0.0.1:1, ,127.0.0.1:2,"}, check: func(o options) string {
			if fmt.Sprint(o.cfg.Peers) != "[127.0.0.1:1 127.0.0.1:2]" {
				return fmt.Sprint(o.cfg.Peers)
			}
			return ""
		}},
		{name: "key of 24 bytes", args: []string{"-key", strings.Repeat("ab", 24)}, check: func(o options) string {
			if len(o.cfg.SecretKey) != 24 || o.cfg.SecretKey[0] != 0xab {
				return fmt.Sprint(o.cfg.SecretKey)
			}
			return ""
		}},
		{name: "fast and bounds", args: []string{"-fast", "-max-keys", "10", "-name", "a"}, check: func(o options) string {
			if o.cfg.Timings != bcache.FastTimings() || o.cfg.MaxKeys != 10 || o.cfg.NodeName != "a" {
				return fmt.Sprintf("%+v", o.cfg)
			}
			return ""
		}},
		{name: "watch bytes", args: []string{"-watch-bytes", "1048576"}, check: func(o options) string {
			if o.cfg.SubscriptionBytes != 1<<20 {
				return fmt.Sprintf("%+v", o.cfg)
			}
			return ""
		}},
		{name: "negative watch bytes", args: []string{"-watch-bytes", "-1"}, wantErr: "-watch-bytes -1: want 0 or more"},
		{name: "packet size", args: []string{"-packet-size", "9000"}, check: func(o options) string {
			if o.cfg.PacketSize != 9000 {
				return fmt.Sprintf("%+v", o.cfg)
			}
			return ""
		}},
		{name: "snapshot", args: []string{"-snapshot", "/tmp/n.snap"}, check: func(o options) string {
			if o.cfg.SnapshotPath != "/tmp/n.snap" {
				return fmt.Sprintf("%+v", o.cfg)
			}
			return ""
		}},
		{name: "durability", args: []string{"-snapshot", "/tmp/n.snap", "-sync", "interval", "-sync-interval", "50ms", "-on-damage", "reset"}, check: func(o options) string {
			if o.cfg.Sync != bcache.SyncInterval || o.cfg.SyncEvery != 50*time.Millisecond || o.cfg.OnDamage != bcache.DamageReset {
				return fmt.Sprintf("%+v", o.cfg)
			}
			return ""
		}},
		{name: "unknown sync policy", args: []string{"-sync", "always"}, wantErr: `unknown sync policy "always"`},
		{name: "accepted keys", args: []string{"-key", strings.Repeat("ab", 16), "-accept-keys", strings.Repeat("cd", 32) + "," + strings.Repeat("ef", 24)}, check: func(o options) string {
			if len(o.cfg.AcceptKeys) != 2 || len(o.cfg.AcceptKeys[0]) != 32 || o.cfg.AcceptKeys[1][0] != 0xef {
				return fmt.Sprint(o.cfg.AcceptKeys)
			}
			return ""
		}},
		{name: "accepted key too short", args: []string{"-accept-keys", "abcd"}, wantErr: "-accept-keys: 2 bytes"},
		// Keys from files, kept off the command line that other processes
		// may read (found by review).
		{name: "keys from files", args: []string{"-key-file", keyFile, "-accept-keys-file", acceptFile}, check: func(o options) string {
			if len(o.cfg.SecretKey) != 16 || o.cfg.SecretKey[0] != 0xab || len(o.cfg.AcceptKeys) != 2 || o.cfg.AcceptKeys[1][0] != 0xef {
				return fmt.Sprint(o.cfg.SecretKey, o.cfg.AcceptKeys)
			}
			return ""
		}},
		{name: "no accept-keys file", args: []string{"-key-file", keyFile, "-accept-keys-file", filepath.Join(dir, "none")}, check: func(o options) string {
			if len(o.cfg.SecretKey) != 16 || o.cfg.AcceptKeys != nil {
				return fmt.Sprint(o.cfg.SecretKey, o.cfg.AcceptKeys)
			}
			return ""
		}},
		{name: "empty key file", args: []string{"-key-file", emptyFile}, wantErr: "is empty"},
		{name: "missing key file", args: []string{"-key-file", filepath.Join(dir, "none")}, wantErr: "-key-file: open"},
		{name: "key and key file", args: []string{"-key", strings.Repeat("ab", 16), "-key-file", keyFile}, wantErr: "give one"},
		{name: "key not hex", args: []string{"-key", "xyz"}, wantErr: "-key: not hex"},
		{name: "key of 15 bytes", args: []string{"-key", strings.Repeat("ab", 15)}, wantErr: "-key: 15 bytes"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
		{name: "extra argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		// Flags that qualify one not given were ignored (found by review).
		{name: "snapshot interval without a snapshot", args: []string{"-snapshot-interval", "1m"}, wantErr: "needs -snapshot"},
		{name: "sync interval without -sync interval", args: []string{"-snapshot", filepath.Join(dir, "s"), "-sync", "write", "-sync-interval", "5ms"}, wantErr: "needs -sync interval"},
		{name: "sync interval", args: []string{"-snapshot", filepath.Join(dir, "s"), "-sync", "interval", "-sync-interval", "5ms"}, check: func(o options) string {
			if o.cfg.SyncEvery != 5*time.Millisecond || o.cfg.Sync != bcache.SyncInterval {
				return fmt.Sprintf("%+v", o.cfg)
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(o); msg != "" {
				t.Fatalf("parsed %s", msg)
			}
		})
	}
}

func TestDefaultName(t *testing.T) {
	if got := defaultName("127.0.0.1:0"); got != "" {
		t.Fatalf("defaultName with port 0 = %q, want empty", got)
	}
	if got := defaultName("127.0.0.1:7950"); got != "" && !strings.HasSuffix(got, "-7950") {
		t.Fatalf("defaultName = %q, want hostname-7950", got)
	}
}

// TestUsageListsTheAPI: -h shows the HTTP API besides the flags.
func TestUsageListsTheAPI(t *testing.T) {
	var out strings.Builder
	if _, err := parseFlags([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"PUT", "GET", "DELETE", "/v1/keys/{key}", "?ttl=", "?wait=", "Bcache-Token", "/v1/members", "/v1/stats",
		"/v1/status", "/readyz", "/metrics", "/v1/watch", "-bind"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("-h does not mention %q:\n%s", want, out.String())
		}
	}
}

// TestFlagsOfTheSnapshotAndTheHTTPAddress: -on-damage qualifies
// -snapshot, and was ignored without it (the member started, 0); a
// malformed -http is a flag error (exit 2, as a malformed -bind is), not
// a failure to listen (exit 1).
func TestFlagsOfTheSnapshotAndTheHTTPAddress(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-on-damage", "reset"}, "-on-damage: needs -snapshot"},
		{[]string{"-sync", "write"}, "-sync write: needs -snapshot"},
		{[]string{"-http", "unix:"}, "needs a socket's path"},
		{[]string{"-http", "nonsense"}, "-http"},
		{[]string{"-http", "127.0.0.1:99999"}, "-http"},
		{[]string{"-max-conns", "0"}, "-max-conns 0"},
	} {
		if _, err := parseFlags(tt.args, io.Discard); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: error %v, want one containing %q", tt.args, err, tt.wantErr)
		}
	}
	for _, args := range [][]string{{"-http", "unix:/tmp/n.sock"}, {"-http", "127.0.0.1:0"}, {"-http", "localhost:8080"}, {"-on-damage", "reset", "-snapshot", "/tmp/n.snap"}} {
		if _, err := parseFlags(args, io.Discard); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}

// TestKeyFilesAreReadWithinABound: a key file over 64 KiB is refused, not
// read whole (/dev/zero given by mistake was read without end).
func TestKeyFilesAreReadWithinABound(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("0"), maxKeysFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-key-file", "-accept-keys-file"} {
		if _, err := parseFlags([]string{flag, big}, io.Discard); err == nil || !strings.Contains(err.Error(), "not a key file") {
			t.Errorf("%s of %d bytes: error %v, want one saying it is not a key file", flag, maxKeysFile+1, err)
		}
	}
}

// TestMaxBytesUnderAMebibyteStarts: -max-bytes under 1 MiB alone starts
// a member whose largest value is -max-bytes, as the library's default
// would have it: the flag's default of -max-value, 1 MiB, was passed as
// given, over MaxBytes, and the node refused to start (exit 2) unless
// -max-value was lowered too.
func TestMaxBytesUnderAMebibyteStarts(t *testing.T) {
	o, err := parseFlags([]string{"-max-bytes", "524288", "-bind", "127.0.0.1:0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bcache.New(o.cfg)
	if err != nil {
		t.Fatalf("-max-bytes 524288 alone: %v", err)
	}
	defer c.Close()
	if got := c.Config().MaxValueSize; got != 524288 {
		t.Fatalf("MaxValueSize %d, want 524288", got)
	}
	if _, err := parseFlags([]string{"-max-bytes", "524288", "-max-value", "1048576"}, io.Discard); err != nil {
		t.Fatal(err) // given both, the library's ErrConfig says why at New
	}
}

// TestClockOffsetPastTheStampableTimesIsRefused: a -clock-offset that
// moves the clock past 2262 is a flag error, exit 2: the
// member's clock wrapped, 2500000h ahead ran it in 1727, and the node
// started as if the flag were good. Offsets a fault test gives still
// parse.
func TestClockOffsetPastTheStampableTimesIsRefused(t *testing.T) {
	for _, d := range []string{"2500000h", "2562047h"} { // behind, no duration reaches 1677 from now
		if _, err := parseFlags([]string{"-clock-offset", d}, io.Discard); err == nil || !strings.Contains(err.Error(), "-clock-offset") {
			t.Errorf("-clock-offset %s: %v, want an error", d, err)
		}
		var stderr strings.Builder
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a node started by mistake stops at once
		if code := run(ctx, []string{"-clock-offset", d, "-bind", "127.0.0.1:0", "-http", "127.0.0.1:0"}, &stderr); code != 2 {
			t.Errorf("-clock-offset %s: exit %d, want 2 (%s)", d, code, stderr.String())
		}
	}
	for _, d := range []string{"-90s", "1h", "-8760h", "87600h"} { // up to ten years ahead
		o, err := parseFlags([]string{"-clock-offset", d}, io.Discard)
		if err != nil {
			t.Errorf("-clock-offset %s: %v", d, err)
			continue
		}
		want, _ := time.ParseDuration(d)
		if got := o.cfg.Clock().Sub(time.Now()); got < want-time.Minute || got > want+time.Minute {
			t.Errorf("-clock-offset %s: the clock is %v off", d, got)
		}
	}
}

// TestConfigErrorsNameTheirFlag: a flag whose value the library refuses
// (ErrConfig, naming its Config field) is named in the start error's
// line, which named the field alone ("BindAddr: ...", for -bind); a file
// flag's by the file flag.
func TestConfigErrorsNameTheirFlag(t *testing.T) {
	// More keys than a member can name (60): refused by bcache.New, not
	// by the flags, and named by the flag that gave them, the file's too.
	var keys []string
	for i := range 61 {
		keys = append(keys, fmt.Sprintf("%032x", i+1))
	}
	many := filepath.Join(t.TempDir(), "accept")
	if err := os.WriteFile(many, []byte(strings.Join(keys, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("ab", 16)
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"-bind", "127.0.0.1:0", "-key", key, "-accept-keys", strings.Join(keys, ",")}, "-accept-keys"},
		{[]string{"-bind", "127.0.0.1:0", "-key", key, "-accept-keys-file", many}, "-accept-keys-file"},
		{[]string{"-bind", "127.0.0.1"}, "-bind"},
		{[]string{"-bind", "127.0.0.1:0", "-peers", "127.0.0.1"}, "-peers"},
		{[]string{"-bind", "127.0.0.1:0", "-max-value", "100000000"}, "-max-value"},
		// gossip's own AdvertiseAddr errors put no colon after the field
		// (`AdvertiseAddr "localhost:7946": ...`): the line said "flag":"".
		{[]string{"-bind", "127.0.0.1:0", "-advertise", "localhost:7946"}, "-advertise"},
		{[]string{"-bind", "127.0.0.1:0", "-advertise", "0.0.0.0:7946"}, "-advertise"},
	} {
		o, err := parseFlags(c.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		c2, err := bcache.New(o.cfg)
		if err == nil {
			c2.Close()
			t.Fatalf("%v: started", c.args)
		}
		if !errors.Is(err, bcache.ErrConfig) || o.flagOf(err) != c.flag {
			t.Errorf("%v: %v named flag %q, want %q", c.args, err, o.flagOf(err), c.flag)
		}
	}
	if f := (options{}).flagOf(errors.New("not a config error: BindAddr: x")); f != "" {
		t.Errorf("flagOf of another error: %q", f)
	}
}
