package main

import (
	"testing"

	strowger "strowger.dev/sdk/go"
)

func TestPrefixRewriteAndTrunk(t *testing.T) {
	r := &router{}
	if err := r.Init(`{"from": "90", "to": "91", "trunk": "bench-uas"}`); err != nil {
		t.Fatal(err)
	}
	d, err := r.Route(&strowger.Call{BNumber: "9012345"})
	if err != nil {
		t.Fatal(err)
	}
	f, ok := d.(strowger.Forward)
	if !ok || len(f.Attempts) != 1 || f.Attempts[0].Destination != strowger.ToTrunk("bench-uas") ||
		f.Attempts[0].BNumber == nil || *f.Attempts[0].BNumber != "9112345" {
		t.Fatalf("got %#v", d)
	}
	if d, _ := r.Route(&strowger.Call{BNumber: "8012345"}); d != (strowger.Reject{Code: 404, Reason: "No route"}) {
		t.Fatalf("no prefix: %#v", d)
	}
}

func TestBadConfigRefused(t *testing.T) {
	for _, c := range []string{`{"from": "90", "trunk": ""}`, `{"from": "90", "trunk": "t", "typo": 1}`} {
		if err := (&router{}).Init(c); err == nil {
			t.Errorf("%s accepted", c)
		}
	}
}
