package strowger

import (
	"testing"
	"time"
)

func TestParseDestination(t *testing.T) {
	good := map[string]Destination{
		"carrier-a":              ToTrunk("carrier-a"),
		"trunk:carrier-a":        ToTrunk("carrier-a"),
		"group:out":              ToTrunkGroup("out"),
		"trunk-group:out":        ToTrunkGroup("out"),
		"user:1001":              ToUser("1001"),
		"uri:sip:1@10.0.0.1":     ToURI("sip:1@10.0.0.1"),
		"sip:5511@10.0.0.1:5060": ToURI("sip:5511@10.0.0.1:5060"),
	}
	for s, want := range good {
		got, err := ParseDestination(s)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "trunk:", "fax:1"} {
		if _, err := ParseDestination(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestParseCause(t *testing.T) {
	good := map[string]Cause{"no-answer": NoAnswer, "5xx": OnStatusClass(5), "486": OnStatus(486), "unavailable": Unavailable, "limit-reached": LimitReached}
	for s, want := range good {
		if got, err := ParseCause(s); err != nil || got != want {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	for _, s := range []string{"busy", "200", "7xx", ""} {
		if _, err := ParseCause(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestDecodeConfigStrict(t *testing.T) {
	var c struct {
		A string `json:"a"`
	}
	if err := DecodeConfig(`{"a":"x"}`, &c); err != nil || c.A != "x" {
		t.Fatal(err, c)
	}
	if err := DecodeConfig("", &c); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"b":1}`, `{"a":"x"} {}`, `{"a":1}`, `[`} {
		if err := DecodeConfig(bad, &c); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDateTime(t *testing.T) {
	zone := time.FixedZone("", -3*3600)
	tm := time.Date(2026, time.November, 29, 23, 15, 7, 0, zone) // a Sunday
	d := DateTimeOf(tm)
	if d.Weekday != 7 || d.Hour != 23 || d.Minute != 15 || d.UTCOffsetMinutes != -180 || d.MinuteOfDay() != 23*60+15 {
		t.Fatalf("%+v", d)
	}
	if !d.Time().Equal(tm.Truncate(time.Second)) || d.Time().Hour() != 23 {
		t.Fatalf("round trip %v", d.Time())
	}
}

func TestCallHeader(t *testing.T) {
	c := &Call{Headers: []Header{{"X-Account", "42"}, {"Subject", "hi"}}}
	if v, ok := c.Header("x-account"); !ok || v != "42" {
		t.Fatal(v, ok)
	}
	if _, ok := c.Header("X-Missing"); ok {
		t.Fatal("missing header found")
	}
}

type fakeDS map[string]string

type dsHost struct {
	nativeHost
	ds fakeDS
}

func (h dsHost) DatasetGet(_, key string) (string, bool) { v, ok := h.ds[key]; return v, ok }
func (h dsHost) DatasetLongestPrefix(_, key string) (string, string, bool) {
	best := ""
	for k := range h.ds {
		if len(k) <= len(key) && key[:len(k)] == k && len(k) > len(best) {
			best = k
		}
	}
	return best, h.ds[best], best != ""
}

func TestDatasetLookupExactThenPrefix(t *testing.T) {
	prev := SetHost(dsHost{ds: fakeDS{"11": "range", "1133334444": "ported", "113": "sub"}})
	defer SetHost(prev)
	if v, m, ok := DatasetLookup("x", "1133334444"); !ok || v != "ported" || m != "1133334444" {
		t.Fatal(v, m, ok)
	}
	if v, m, ok := DatasetLookup("x", "1139999999"); !ok || v != "sub" || m != "113" {
		t.Fatal(v, m, ok)
	}
	if _, _, ok := DatasetLookup("x", "21"); ok {
		t.Fatal("found")
	}
}
