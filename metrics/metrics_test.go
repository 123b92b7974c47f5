package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

func member(t *testing.T, net *memnet.Network, name string, peers ...string) *bcache.Cache {
	t.Helper()
	tr, err := net.NewTransport(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bcache.New(bcache.Config{NodeName: name, Network: tr, Peers: peers, Timings: bcache.FastTimings(),
		AntiEntropyInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scrape serves reg over HTTP, scrapes it with a real client and parses
// the exposition format.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// value returns the value of the sample of family name whose labels
// include want, and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestScrape: two members, one joining the other after it wrote; the
// joiner's metrics, scraped over HTTP, show the records it received and
// their lag, the exchange that found digest buckets differing, the peer's
// exchange age; every metric is clean under promlint and every one in
// the list is exported.
func TestScrape(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := member(t, net, "a")
	for i := range 50 {
		a.Set(strings.Repeat("k", i+1), []byte("v"), 0)
	}
	// a has handed them to its protocol, alone: they reach b by repair.
	// (b joining while they were still queued got them as deltas.)
	await.Until(t, 10*time.Second, func() bool { return a.Status().PendingDeltas == 0 }, "a's writes stay queued")
	b := member(t, net, "b", a.Addr())
	a.Set("after-join", []byte("v"), 0)
	await.Until(t, 10*time.Second, func() bool { return b.Len() == 51 && b.Stats().Replication.Protocol.SessionsCompleted > 0 },
		"b never caught up")
	a.Set("after-sync", []byte("v"), 0) // a delta, now that a knows b
	await.Until(t, 10*time.Second, func() bool {
		_, ok := b.Get("after-sync")
		return ok && a.Stats().Replication.Protocol.DeltaRecordsSent > 0
	}, "the delta never reached b")
	b.Get("missing")

	bs := b.Stats()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(b), New(a))
	fams := scrape(t, reg)
	problems, err := promlint.NewWithMetricFamilies(mapValues(fams)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, m := range metricList {
		if _, ok := fams[m.name]; !ok && m.name != "bcache_peer_last_exchange_age_seconds" {
			t.Errorf("%s not exported", m.name)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		check  func(float64) bool
	}{
		{"bcache_values", map[string]string{"member": "b"}, func(v float64) bool { return v == 52 }},
		{"bcache_reads_total", map[string]string{"member": "b", "result": "hit"}, func(v float64) bool { return v == float64(bs.Hits) && v > 0 }},
		{"bcache_reads_total", map[string]string{"member": "b", "result": "miss"}, func(v float64) bool { return v == float64(bs.Misses) && v > 0 }},
		{"bcache_peers", map[string]string{"member": "b"}, func(v float64) bool { return v == 1 }},
		{"bcache_synced", map[string]string{"member": "b"}, func(v float64) bool { return v == 1 }},
		{"bcache_ready", map[string]string{"member": "b"}, func(v float64) bool { return v == 1 }},
		{"bcache_founder", map[string]string{"member": "b"}, func(v float64) bool { return v == 0 }},
		{"bcache_founder", map[string]string{"member": "a"}, func(v float64) bool { return v == 0 }}, // it founded, and has met b since
		{"bcache_ready", map[string]string{"member": "a"}, func(v float64) bool { return v == 1 }},
		{"bcache_records_applied_total", map[string]string{"member": "b"}, func(v float64) bool { return v >= 52 }},
		{"bcache_delta_records_sent_total", map[string]string{"member": "a"}, func(v float64) bool { return v >= 1 }},
		{"bcache_peer_last_exchange_age_seconds", map[string]string{"member": "b", "peer": "a"}, func(v float64) bool { return v >= 0 && v < 10 }},
		{"bcache_peer_exchanged", map[string]string{"member": "b", "peer": "a"}, func(v float64) bool { return v == 1 }},
	} {
		if v, ok := value(fams, c.name, c.labels); !ok || !c.check(v) {
			t.Errorf("%s%v = %v (present %v)", c.name, c.labels, v, ok)
		}
	}
	// Every record b applied went into one of the lag histograms.
	delta, _ := value(fams, "bcache_replication_lag_seconds", map[string]string{"member": "b", "path": "delta"})
	repair, _ := value(fams, "bcache_replication_lag_seconds", map[string]string{"member": "b", "path": "repair"})
	applied, _ := value(fams, "bcache_records_applied_total", map[string]string{"member": "b"})
	if delta+repair != applied || repair < 50 {
		t.Errorf("lag histograms hold %v deltas and %v repairs, %v records applied; want them to add up, 50 repairs at least", delta, repair, applied)
	}
	// The exchange that brought the 50 keys found buckets differing, on
	// the side that started it.
	sa, sb := a.Stats().Replication.Protocol, b.Stats().Replication.Protocol
	if sa.DifferingLeavesSum+sb.DifferingLeavesSum == 0 {
		t.Errorf("no differing digest buckets counted: a %v, b %v", sa.DifferingLeaves, sb.DifferingLeaves)
	}
}

func mapValues(m map[string]*dto.MetricFamily) []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for _, f := range m {
		out = append(out, f)
	}
	return out
}

// TestREADMEListsEveryMetric: the README's table names every metric.
func TestREADMEListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metricList {
		if !strings.Contains(string(readme), "| `"+m.name+"` |") {
			t.Errorf("the README does not list %s", m.name)
		}
	}
}

// TestNamesThatAreNotUTF8: a name that is not UTF-8 (no member takes one
// now, nor a peer announcing one, but a release before did) is a label
// value all the same, escaped, and two that differ only in such bytes are
// two; a valid name that is the text of an escaped one is another. The
// exporter refused such a label value: every scrape failed (a panic in
// Collect).
func TestNamesThatAreNotUTF8(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{"b\xff", "b\xfe", `"b\xff"`, "b", `"b"`} {
		v := labelValue(name)
		if !utf8.ValidString(v) {
			t.Errorf("%q: label value %q is not UTF-8", name, v)
		}
		if other, ok := seen[v]; ok {
			t.Errorf("%q and %q: one label value %q", other, name, v)
		}
		seen[v] = name
	}
}

// TestGarbageIsCounted: garbage datagrams sent to a member of a keyed
// cluster (a process without the key) show in a metric, as they do in
// Stats; no metric moved (found by review).
func TestGarbageIsCounted(t *testing.T) {
	c, err := bcache.New(bcache.Config{NodeName: "solo", BindAddr: "127.0.0.1:0", Timings: bcache.FastTimings(),
		SecretKey: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(c))
	conn, err := net.Dial("udp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 20 {
		fmt.Fprintf(conn, "garbage %d, no frame of anyone's", i)
	}
	await.Until(t, 5*time.Second, func() bool {
		v, _ := value(scrape(t, reg), "bcache_memberlist_errors_total", nil)
		return v > 0
	}, "no garbage counted in bcache_memberlist_errors_total (Stats: %+v)", c.Stats().Replication.MemberlistErrors)
}

// TestPeerSeries: every live peer has a bcache_peer_exchanged series, 0
// until an exchange with it completes (with the age alone, absent until
// then, a peer that never completed one left no series to alert on);
// a peer listed twice has one series, which shows the latest exchange of
// either; a name that begins with a quote is not taken for another's
// quoted name.
func TestPeerSeries(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	got := map[string]float64{}
	peerSeries([]bcache.PeerStatus{
		{Name: "never"},
		{Name: "recent", LastSync: now.Add(-2 * time.Second)},
		{Name: `"b\xff"`, LastSync: now.Add(-7 * time.Second)}, // valid UTF-8, but quoted: it begins with a quote
		{Name: "b\xff"}, // quoted: listed twice, one series
		{Name: "b\xff", LastSync: now.Add(-3 * time.Second)},
	}, now, func(name string, v float64, labels ...string) {
		key := name + "{" + strings.Join(labels, ",") + "}"
		if _, dup := got[key]; dup {
			t.Errorf("%s emitted twice", key)
		}
		got[key] = v
	})
	want := map[string]float64{
		"bcache_peer_exchanged{never}":                        0,
		"bcache_peer_exchanged{recent}":                       1,
		"bcache_peer_last_exchange_age_seconds{recent}":       2,
		`bcache_peer_exchanged{"b\xff"}`:                      1,
		`bcache_peer_last_exchange_age_seconds{"b\xff"}`:      3,
		`bcache_peer_exchanged{"\"b\\xff\""}`:                 1,
		`bcache_peer_last_exchange_age_seconds{"\"b\\xff\""}`: 7,
	}
	if len(got) != len(want) {
		t.Errorf("got series %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// TestExchangeAgeIsOnTheMembersClock: a peer's last exchange is timed on
// the member's clock (Config.Clock; the node's -clock-offset), and its
// age is taken on it too: taken against the process's clock, a member
// whose clock ran 20 s behind reported an exchange that had just
// completed as 20 s old (and one whose clock ran ahead, as 0 s old for
// ever: found by review).
func TestExchangeAgeIsOnTheMembersClock(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := member(t, net, "a")
	tr, err := net.NewTransport("b")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bcache.New(bcache.Config{NodeName: "b", Network: tr, Peers: []string{a.Addr()}, Timings: bcache.FastTimings(),
		AntiEntropyInterval: 50 * time.Millisecond, Clock: func() time.Time { return time.Now().Add(-20 * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(b))
	fams := scrape(t, reg)
	age, ok := value(fams, "bcache_peer_last_exchange_age_seconds", map[string]string{"member": "b", "peer": "a"})
	if !ok || age > 5 {
		t.Errorf("bcache_peer_last_exchange_age_seconds{member=b,peer=a} = %v (present %v) with exchanges every 50 ms; want under 5 s", age, ok)
	}
}

// TestDifferingBucketsAreTheCountedOnes: the differing-buckets histogram
// is labelled with the bounds the sessions count by, whatever a caller
// writes into the deprecated DifferingLeavesBounds (the metrics read it,
// and one bound changed there mislabelled a bucket: found by review).
func TestDifferingBucketsAreTheCountedOnes(t *testing.T) {
	defer func(b [len(transport.DifferingLeavesBounds)]int) { transport.DifferingLeavesBounds = b }(transport.DifferingLeavesBounds)
	for i := range transport.DifferingLeavesBounds {
		transport.DifferingLeavesBounds[i] = 1_000_000 + i
	}
	var p transport.Stats
	p.DifferingLeaves[1] = 3 // three sessions found one leaf differing
	m := &dto.Metric{}
	if err := differing(prometheus.NewDesc("d", "d", nil, nil), p).Write(m); err != nil {
		t.Fatal(err)
	}
	for _, b := range m.GetHistogram().GetBucket() {
		if b.GetUpperBound() == 1 && b.GetCumulativeCount() == 3 {
			return
		}
	}
	t.Fatalf("no bucket of upper bound 1 counting the 3 sessions: %v", m.GetHistogram().GetBucket())
}

// TestMembersOfDistinctNamesRegisterSideBySide: the package says
// several Caches of one process register side by side, each labelled by
// its name: two whose names differ register together, one the other
// quoted too (a valid name the very text of an invalid one's quoted
// label took its label, found by review: TestNamesThatAreNotUTF8).
func TestMembersOfDistinctNamesRegisterSideBySide(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := member(t, net, "a")
	b := member(t, net, `"a"`)
	if a.Name() == b.Name() {
		t.Fatal("same name")
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(New(a)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(New(b)); err != nil {
		t.Errorf("members %q and %q: %v", a.Name(), b.Name(), err)
	}
}

// TestAPeerThatNeverExchangedIsNotHidden: a peer named "b\xff"
// that never completes an exchange has its bcache_peer_exchanged 0,
// whatever another peer, named `"b\xff"` (quotes included: a name any
// member may take), does.
func TestAPeerThatNeverExchangedIsNotHidden(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	zeros := 0
	peerSeries([]bcache.PeerStatus{
		{Name: "b\xff"}, // never exchanged
		{Name: `"b\xff"`, LastSync: now.Add(-time.Second)},
	}, now, func(name string, v float64, labels ...string) {
		if name == "bcache_peer_exchanged" && v == 0 {
			zeros++
		}
	})
	if zeros != 1 {
		t.Errorf("%d bcache_peer_exchanged series at 0, want 1: the peer that never exchanged is hidden", zeros)
	}
}

// TestREADMEMeaningsAreTheHelp: the README's table gives each metric the
// type, labels and meaning its HELP line gives: the README is what an
// operator reads, /metrics what a dashboard shows, and the two drifted
// (bcache_join_failing_addresses's help lacked the README's note that a
// member whose messages cannot be read at all is not counted; found by
// review).
func TestREADMEMeaningsAreTheHelp(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[prometheus.ValueType]string{prometheus.CounterValue: "counter", prometheus.GaugeValue: "gauge", histogram: "histogram"}
	for _, m := range metricList {
		want := fmt.Sprintf("| `%s` | %s | %s | %s |", m.name, kinds[m.kind], strings.Join(m.labels, ", "), m.help)
		if !strings.Contains(string(readme), "\n"+want+"\n") {
			t.Errorf("the README's row of %s is not\n%s", m.name, want)
		}
	}
}
