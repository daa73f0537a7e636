package main

import (
	"testing"

	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/strowgertest"
)

func host(t *testing.T) *strowgertest.Host {
	return strowgertest.Install(t, &strowgertest.Host{Datasets: map[string]map[string]string{
		"br-ported": {"11987654321": "55321", "1133334444": "55341"},
		"br-ranges": {"1198765": "55341", "11": "55341", "21": "55331"},
		"single":    {"11987654321": "55321", "11": "55341", "1133334444": "55341"},
	}})
}

func newPlugin(t *testing.T, cfg string) *plugin {
	t.Helper()
	p := &plugin{}
	if err := p.Init(cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

const brCfg = `{"ported_dataset":"br-ported","ranges_dataset":"br-ranges",
  "strip_prefixes":["+55","0055","0"],"min_digits":10,"max_digits":11,
  "routing_number":"{carrier}{number}"}`

func TestPortedNumber(t *testing.T) {
	h := host(t)
	p := newPlugin(t, brCfg)
	for _, in := range []string{"11987654321", "+5511987654321", "005511987654321", "011987654321"} {
		r, err := p.Lookup(&strowger.PortabilityQuery{Number: in})
		if err != nil || r == nil {
			t.Fatalf("%s: %v %v", in, r, err)
		}
		want := strowger.PortabilityResult{Number: "11987654321", Carrier: "55321", RoutingNumber: "5532111987654321", Ported: true}
		if *r != want {
			t.Errorf("%s: got %+v want %+v", in, *r, want)
		}
	}
	if h.Counter("ported") != 4 {
		t.Errorf("ported counter %d", h.Counter("ported"))
	}
}

func TestExactEntrySameAsRangeOwnerIsNotPorted(t *testing.T) {
	host(t)
	p := newPlugin(t, brCfg)
	r, _ := p.Lookup(&strowger.PortabilityQuery{Number: "1133334444"})
	if r == nil || r.Carrier != "55341" || r.Ported {
		t.Fatalf("%+v", r)
	}
}

func TestRangeOwner(t *testing.T) {
	host(t)
	p := newPlugin(t, brCfg)
	r, _ := p.Lookup(&strowger.PortabilityQuery{Number: "2122223333"})
	if r == nil || *r != (strowger.PortabilityResult{Number: "2122223333", Carrier: "55331", RoutingNumber: "553312122223333"}) {
		t.Fatalf("%+v", r)
	}
	// Longest prefix wins.
	r, _ = p.Lookup(&strowger.PortabilityQuery{Number: "11987650000"})
	if r == nil || r.Carrier != "55341" || r.Ported {
		t.Fatalf("%+v", r)
	}
}

func TestUnknownAndMalformed(t *testing.T) {
	h := host(t)
	p := newPlugin(t, brCfg)
	for _, in := range []string{"3133334444", "", "11abc", "119", "119876543210000", "+5511"} {
		r, err := p.Lookup(&strowger.PortabilityQuery{Number: in})
		if err != nil || r != nil {
			t.Errorf("%q: %+v %v", in, r, err)
		}
	}
	if h.Counter("unknown_number") != 1 || h.Counter("not_a_number") != 5 {
		t.Errorf("counters %d %d", h.Counter("unknown_number"), h.Counter("not_a_number"))
	}
}

func TestSingleDataset(t *testing.T) {
	host(t)
	p := newPlugin(t, `{"ported_dataset":"single","routing_number":"55{carrier}{number}"}`)
	r, _ := p.Lookup(&strowger.PortabilityQuery{Number: "11987654321"})
	if r == nil || !r.Ported || r.Carrier != "55321" || r.RoutingNumber != "555532111987654321" {
		t.Fatalf("%+v", r)
	}
	r, _ = p.Lookup(&strowger.PortabilityQuery{Number: "1133334444"})
	if r == nil || r.Ported || r.Carrier != "55341" {
		t.Fatalf("same-owner exact: %+v", r)
	}
	r, _ = p.Lookup(&strowger.PortabilityQuery{Number: "1155556666"})
	if r == nil || r.Ported || r.Carrier != "55341" {
		t.Fatalf("range: %+v", r)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []string{`{}`, `{"ported_dataset":"x","routing_number":"{carrier}"}`,
		`{"ported_dataset":"x","min_digits":12,"max_digits":10}`, `{"ported_dataset":"x","extra":1}`} {
		if err := (&plugin{}).Init(c); err == nil {
			t.Errorf("accepted %s", c)
		}
	}
}
