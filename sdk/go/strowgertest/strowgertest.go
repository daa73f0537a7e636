// Package strowgertest provides a configurable fake [strowger.Host] for
// plugin unit tests run natively with `go test` (no WebAssembly, no switch).
package strowgertest

import (
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	strowger "strowger.dev/sdk/go"
)

// LogLine is one line a plugin logged.
type LogLine struct {
	Level   strowger.Level
	Message string
}

// Host is a fake host. Fill the fields, then [Install] it.
type Host struct {
	// ConfigJSON is returned by strowger.Config ("{}" when empty).
	ConfigJSON string
	// Time is returned by strowger.Now (the current time when zero).
	Time strowger.DateTime
	// Datasets maps data set name -> key -> value.
	Datasets map[string]map[string]string
	// Contacts maps AOR -> registered contacts.
	Contacts map[string][]strowger.Contact
	// Trunks maps trunk name -> state.
	Trunks map[string]strowger.TrunkState

	mu       sync.Mutex
	logs     []LogLine
	counters map[string]uint64
}

// Install makes h the host for the duration of the test.
func Install(t testing.TB, h *Host) *Host {
	t.Helper()
	prev := strowger.SetHost(h)
	t.Cleanup(func() { strowger.SetHost(prev) })
	return h
}

// At returns the DateTime of a local wall-clock time with the given UTC
// offset in minutes, for Host.Time.
func At(year int, month time.Month, day, hour, minute int, utcOffsetMinutes int) strowger.DateTime {
	zone := time.FixedZone("", utcOffsetMinutes*60)
	return strowger.DateTimeOf(time.Date(year, month, day, hour, minute, 0, 0, zone))
}

// Logs returns what the plugin logged so far.
func (h *Host) Logs() []LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]LogLine(nil), h.logs...)
}

// Counter returns the value of counter name.
func (h *Host) Counter(name string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counters[name]
}

// Log implements strowger.Host.
func (h *Host) Log(level strowger.Level, message string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, LogLine{level, message})
}

// CounterAdd implements strowger.Host.
func (h *Host) CounterAdd(name string, delta uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counters == nil {
		h.counters = map[string]uint64{}
	}
	h.counters[name] += delta
}

// Config implements strowger.Host.
func (h *Host) Config() string {
	if h.ConfigJSON == "" {
		return "{}"
	}
	return h.ConfigJSON
}

// Now implements strowger.Host.
func (h *Host) Now() strowger.DateTime {
	if h.Time == (strowger.DateTime{}) {
		return strowger.DateTimeOf(time.Now())
	}
	return h.Time
}

// DatasetGet implements strowger.Host.
func (h *Host) DatasetGet(dataset, key string) (string, bool) {
	v, ok := h.Datasets[dataset][key]
	return v, ok
}

// DatasetLongestPrefix implements strowger.Host.
func (h *Host) DatasetLongestPrefix(dataset, key string) (string, string, bool) {
	best, found := "", false
	for k := range h.Datasets[dataset] {
		if strings.HasPrefix(key, k) && (!found || len(k) > len(best)) {
			best, found = k, true
		}
	}
	if !found {
		return "", "", false
	}
	return best, h.Datasets[dataset][best], true
}

// LocationLookup implements strowger.Host.
func (h *Host) LocationLookup(aor string) []strowger.Contact {
	return h.Contacts[aor]
}

// TrunkStatus implements strowger.Host.
func (h *Host) TrunkStatus(name string) (strowger.TrunkState, bool) {
	s, ok := h.Trunks[name]
	return s, ok
}

// DatasetKeys returns the sorted keys of a data set (for assertions).
func (h *Host) DatasetKeys(dataset string) []string {
	keys := make([]string, 0, len(h.Datasets[dataset]))
	for k := range h.Datasets[dataset] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
