package strowger

import (
	"fmt"
	"os"
	"sync"
)

// Level is a log severity.
type Level uint8

// Log levels.
const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// String returns the lower-case level name.
func (l Level) String() string {
	switch l {
	case LevelTrace:
		return "trace"
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	case LevelWarn:
		return "warn"
	}
	return "error"
}

// Contact is one registered contact of an address-of-record.
type Contact struct {
	URI       string
	ExpiresIn uint32
	// Where the registration came from.
	Source    Endpoint
	UserAgent *string
}

// TrunkState is the state of a trunk as the host sees it.
type TrunkState struct {
	Name      string
	Up        bool
	ActiveIn  uint32
	ActiveOut uint32
	// Limits; nil = unlimited.
	MaxIn    *uint32
	MaxOut   *uint32
	MaxTotal *uint32
	// Last OPTIONS round-trip, if qualify is on.
	LatencyMs *uint32
	// For trunks we register to: whether the registration is current.
	Registered *bool
}

// Full reports whether the trunk is at one of its concurrent-call limits for
// an outbound call.
func (t TrunkState) Full() bool {
	if t.MaxOut != nil && t.ActiveOut >= *t.MaxOut {
		return true
	}
	return t.MaxTotal != nil && t.ActiveIn+t.ActiveOut >= *t.MaxTotal
}

// Host is the set of capabilities the switch grants a plugin. Inside the
// switch it is the real host; in native tests set a fake with [SetHost] (see
// package strowgertest).
type Host interface {
	Log(level Level, message string)
	CounterAdd(name string, delta uint64)
	Config() string
	Now() DateTime
	DatasetGet(dataset, key string) (string, bool)
	// DatasetLongestPrefix returns the longest key of dataset that is a
	// prefix of key, and its value.
	DatasetLongestPrefix(dataset, key string) (prefix, value string, ok bool)
	LocationLookup(aor string) []Contact
	TrunkStatus(name string) (TrunkState, bool)
}

var (
	hostMu  sync.RWMutex
	current Host = nativeHost{}
)

// SetHost replaces the host the package functions use and returns the
// previous one. The WebAssembly glue installs the real host at start-up;
// tests install fakes.
func SetHost(h Host) Host {
	hostMu.Lock()
	defer hostMu.Unlock()
	prev := current
	if h == nil {
		h = nativeHost{}
	}
	current = h
	return prev
}

func host() Host {
	hostMu.RLock()
	defer hostMu.RUnlock()
	return current
}

// Log writes a log line (tagged by the host with plugin, version and call).
func Log(level Level, message string) { host().Log(level, message) }

// Tracef logs at trace level.
func Tracef(format string, args ...any) { Log(LevelTrace, fmt.Sprintf(format, args...)) }

// Debugf logs at debug level.
func Debugf(format string, args ...any) { Log(LevelDebug, fmt.Sprintf(format, args...)) }

// Infof logs at info level.
func Infof(format string, args ...any) { Log(LevelInfo, fmt.Sprintf(format, args...)) }

// Warnf logs at warn level.
func Warnf(format string, args ...any) { Log(LevelWarn, fmt.Sprintf(format, args...)) }

// Errorf logs at error level.
func Errorf(format string, args ...any) { Log(LevelError, fmt.Sprintf(format, args...)) }

// CounterAdd adds delta to the plugin counter name ([a-z0-9_], at most 64
// characters; exported by the switch as a Prometheus counter).
func CounterAdd(name string, delta uint64) { host().CounterAdd(name, delta) }

// Config returns the plugin's configuration JSON ("{}" when none).
func Config() string { return host().Config() }

// Now returns the current time as the host sees it.
func Now() DateTime { return host().Now() }

// DatasetGet looks key up exactly in the host-managed data set.
func DatasetGet(dataset, key string) (string, bool) { return host().DatasetGet(dataset, key) }

// DatasetLongestPrefix returns the data set key that is the longest prefix
// of key, and its value.
func DatasetLongestPrefix(dataset, key string) (prefix, value string, ok bool) {
	return host().DatasetLongestPrefix(dataset, key)
}

// DatasetLookup looks key up exactly, then by longest prefix: the usual
// "ported numbers first, number ranges second" lookup. matched is the key or
// prefix that matched.
func DatasetLookup(dataset, key string) (value, matched string, ok bool) {
	if v, ok := DatasetGet(dataset, key); ok {
		return v, key, true
	}
	if p, v, ok := DatasetLongestPrefix(dataset, key); ok {
		return v, p, true
	}
	return "", "", false
}

// LocationLookup returns the current contacts of an address-of-record (or
// a user name in the switch's default domain).
func LocationLookup(aor string) []Contact { return host().LocationLookup(aor) }

// TrunkStatus returns the state of trunk name.
func TrunkStatus(name string) (TrunkState, bool) { return host().TrunkStatus(name) }

// nativeHost serves the package functions outside the switch when no fake
// was installed: logs go to stderr, everything else is empty.
type nativeHost struct{}

func (nativeHost) Log(level Level, message string) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", level, message)
}
func (nativeHost) CounterAdd(string, uint64)                {}
func (nativeHost) Config() string                           { return "{}" }
func (nativeHost) Now() DateTime                            { return DateTimeOf(timeNow()) }
func (nativeHost) DatasetGet(string, string) (string, bool) { return "", false }
func (nativeHost) DatasetLongestPrefix(string, string) (string, string, bool) {
	return "", "", false
}
func (nativeHost) LocationLookup(string) []Contact       { return nil }
func (nativeHost) TrunkStatus(string) (TrunkState, bool) { return TrunkState{}, false }
