package main

import (
	"strings"
	"testing"
	"time"

	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/strowgertest"
)

const cfg = `{
  "primary": "trunk:carrier-a",
  "overflow": "trunk:carrier-b",
  "windows": [{"days": "mon-fri", "start": "08:00", "end": "18:00"},
              {"days": "sat", "start": "22:00", "end": "02:00"}],
  "holidays": ["12-25", "2026-11-20"],
  "retry_on": ["no-answer", "5xx", "486"],
  "primary_ring_timeout_ms": 20000
}`

// 2026-11-23 is a Monday.
func at(day, hour, minute int) *strowger.Call {
	return &strowger.Call{BNumber: "551133334444", Time: strowgertest.At(2026, time.November, day, hour, minute, -180)}
}

func newRouter(t *testing.T, config string) *router {
	t.Helper()
	r := &router{}
	if err := r.Init(config); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return r
}

func targets(t *testing.T, d strowger.RouteDecision) []string {
	t.Helper()
	f, ok := d.(strowger.Forward)
	if !ok {
		t.Fatalf("want Forward, got %#v", d)
	}
	var out []string
	for _, a := range f.Attempts {
		out = append(out, a.Destination.String())
	}
	return out
}

func TestWindows(t *testing.T) {
	h := strowgertest.Install(t, &strowgertest.Host{})
	r := newRouter(t, cfg)
	cases := []struct {
		name           string
		day, hour, min int
		want           string
	}{
		{"monday morning inside", 23, 8, 0, "trunk:carrier-a,trunk:carrier-b"},
		{"monday before opening", 23, 7, 59, "trunk:carrier-b"},
		{"end is exclusive", 23, 18, 0, "trunk:carrier-b"},
		{"friday afternoon", 27, 17, 59, "trunk:carrier-a,trunk:carrier-b"},
		{"saturday midday", 28, 12, 0, "trunk:carrier-b"},
		{"saturday night window", 28, 23, 30, "trunk:carrier-a,trunk:carrier-b"},
		{"crosses into sunday", 29, 1, 59, "trunk:carrier-a,trunk:carrier-b"},
		{"sunday after window", 29, 2, 0, "trunk:carrier-b"},
		{"sunday night: window starts saturdays only", 29, 23, 0, "trunk:carrier-b"},
		{"dated holiday (friday)", 20, 10, 0, "trunk:carrier-b"},
	}
	for _, c := range cases {
		d, err := r.Route(at(c.day, c.hour, c.min))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := strings.Join(targets(t, d), ","); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	if h.Counter("inside_window") != 4 || h.Counter("outside_window") != 6 {
		t.Errorf("counters: inside %d outside %d", h.Counter("inside_window"), h.Counter("outside_window"))
	}
}

func TestYearlyHoliday(t *testing.T) {
	r := newRouter(t, cfg)
	// 2026-12-25 is a Friday, inside the weekday window but a holiday.
	c := &strowger.Call{Time: strowgertest.At(2026, time.December, 25, 10, 0, -180)}
	d, _ := r.Route(c)
	if got := targets(t, d); len(got) != 1 || got[0] != "trunk:carrier-b" {
		t.Fatalf("holiday: %v", got)
	}
}

func TestInsideDecisionDetails(t *testing.T) {
	r := newRouter(t, cfg)
	d, _ := r.Route(at(24, 9, 0))
	f := d.(strowger.Forward)
	if f.Attempts[0].RingTimeoutMs == nil || *f.Attempts[0].RingTimeoutMs != 20000 {
		t.Errorf("primary ring timeout: %v", f.Attempts[0].RingTimeoutMs)
	}
	if f.Attempts[1].RingTimeoutMs != nil {
		t.Errorf("overflow ring timeout should be default")
	}
	want := []strowger.Cause{strowger.NoAnswer, strowger.OnStatusClass(5), strowger.OnStatus(486)}
	if len(f.RetryOn) != len(want) {
		t.Fatalf("retry_on %v", f.RetryOn)
	}
	for i := range want {
		if f.RetryOn[i] != want[i] {
			t.Errorf("retry_on[%d] = %v, want %v", i, f.RetryOn[i], want[i])
		}
	}
	if f.PreferredCause != strowger.LastCause {
		t.Errorf("preferred cause: %v", f.PreferredCause)
	}
}

func TestDefaultRetryOn(t *testing.T) {
	r := newRouter(t, `{"primary":"a","overflow":"group:b","windows":[{"days":"all","start":"00:00","end":"24:00"}]}`)
	d, _ := r.Route(at(29, 3, 0))
	f := d.(strowger.Forward)
	if got := targets(t, d); strings.Join(got, ",") != "trunk:a,trunk-group:b" {
		t.Fatalf("targets %v", got)
	}
	if len(f.RetryOn) != 3 || f.RetryOn[0] != strowger.NoAnswer {
		t.Fatalf("default retry_on %v", f.RetryOn)
	}
}

func TestBadConfigRefused(t *testing.T) {
	bad := map[string]string{
		"empty":           `{}`,
		"unknown field":   `{"primary":"a","overflow":"b","windows":[{"start":"08:00","end":"18:00"}],"primry":"x"}`,
		"no windows":      `{"primary":"a","overflow":"b"}`,
		"bad day":         `{"primary":"a","overflow":"b","windows":[{"days":"mon-fry","start":"08:00","end":"18:00"}]}`,
		"bad time":        `{"primary":"a","overflow":"b","windows":[{"start":"8h","end":"18:00"}]}`,
		"25h":             `{"primary":"a","overflow":"b","windows":[{"start":"08:00","end":"25:00"}]}`,
		"empty window":    `{"primary":"a","overflow":"b","windows":[{"start":"08:00","end":"08:00"}]}`,
		"bad cause":       `{"primary":"a","overflow":"b","windows":[{"start":"08:00","end":"18:00"}],"retry_on":["busy"]}`,
		"bad destination": `{"primary":"fax:1","overflow":"b","windows":[{"start":"08:00","end":"18:00"}]}`,
		"bad holiday":     `{"primary":"a","overflow":"b","windows":[{"start":"08:00","end":"18:00"}],"holidays":["25/12"]}`,
		"not json":        `primary=a`,
	}
	for name, c := range bad {
		if err := (&router{}).Init(c); err == nil {
			t.Errorf("%s: config accepted: %s", name, c)
		}
	}
}
