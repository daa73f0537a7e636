package main

import (
	"fmt"
	"strings"

	strowger "strowger.dev/sdk/go"
)

// Config is the plugin configuration (JSON), e.g. for Brazil:
//
//	{
//	  "ported_dataset": "br-ported",
//	  "ranges_dataset": "br-ranges",
//	  "strip_prefixes": ["+55", "0055", "0"],
//	  "min_digits": 10,
//	  "max_digits": 11,
//	  "routing_number": "{carrier}{number}"
//	}
//
// The called number is normalised (leading prefixes stripped, non-digits
// refused), then looked up exactly in ported_dataset (numbers that moved:
// key = number, value = carrier code, e.g. the RN1 "55321") and, when absent,
// by longest prefix in ranges_dataset (number ranges: key = prefix, value =
// the range owner's carrier code). A number found in neither gives no result
// (the call goes on unchanged). ported is true when the exact entry names a
// carrier other than the range owner. routing_number is a template with
// {carrier} and {number}.
type Config struct {
	PortedDataset string   `json:"ported_dataset"`
	RangesDataset string   `json:"ranges_dataset,omitempty"`
	StripPrefixes []string `json:"strip_prefixes,omitempty"`
	MinDigits     int      `json:"min_digits,omitempty"`
	MaxDigits     int      `json:"max_digits,omitempty"`
	RoutingNumber string   `json:"routing_number,omitempty"`
}

type lookup struct {
	ported, ranges string
	strip          []string
	min, max       int
	template       string
}

func newLookup(c Config) (*lookup, error) {
	if c.PortedDataset == "" {
		return nil, fmt.Errorf("\"ported_dataset\" is required")
	}
	l := &lookup{
		ported:   c.PortedDataset,
		ranges:   c.RangesDataset,
		strip:    c.StripPrefixes,
		min:      c.MinDigits,
		max:      c.MaxDigits,
		template: c.RoutingNumber,
	}
	if l.ranges == "" {
		l.ranges = l.ported
	}
	if l.template == "" {
		l.template = "{carrier}{number}"
	}
	if !strings.Contains(l.template, "{number}") {
		return nil, fmt.Errorf("routing_number %q must contain {number}", l.template)
	}
	if l.min < 0 || l.max < 0 || (l.max > 0 && l.min > l.max) {
		return nil, fmt.Errorf("bad min_digits/max_digits %d/%d", l.min, l.max)
	}
	return l, nil
}

// normalise strips the first matching configured prefix and checks that
// what is left is a plausible number.
func (l *lookup) normalise(n string) (string, bool) {
	for _, p := range l.strip {
		if rest, ok := strings.CutPrefix(n, p); ok {
			n = rest
			break
		}
	}
	if n == "" {
		return "", false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return "", false
		}
	}
	if (l.min > 0 && len(n) < l.min) || (l.max > 0 && len(n) > l.max) {
		return "", false
	}
	return n, true
}

// Lookup implements strowger.Portability.
func (l *lookup) Lookup(q *strowger.PortabilityQuery) (*strowger.PortabilityResult, error) {
	n, ok := l.normalise(q.Number)
	if !ok {
		strowger.CounterAdd("not_a_number", 1)
		return nil, nil
	}
	carrier, exact := strowger.DatasetGet(l.ported, n)
	key := n
	if exact && l.ranges == l.ported {
		// One data set holding both: the exact key is itself its longest
		// prefix, so find the range owner without it.
		key = n[:len(n)-1]
	}
	_, owner, inRange := strowger.DatasetLongestPrefix(l.ranges, key)
	if !exact && !inRange {
		strowger.CounterAdd("unknown_number", 1)
		return nil, nil
	}
	if !exact {
		carrier = owner
	}
	ported := exact && (!inRange || owner != carrier)
	if ported {
		strowger.CounterAdd("ported", 1)
	}
	rn := strings.NewReplacer("{carrier}", carrier, "{number}", n).Replace(l.template)
	return &strowger.PortabilityResult{Number: n, Carrier: carrier, RoutingNumber: rn, Ported: ported}, nil
}
