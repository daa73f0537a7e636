package strowger

import (
	"fmt"
	"strconv"
	"strings"
)

// Call is the call as the switch sees it when the route hook runs (after
// the ingress rewrite and the portability lookup).
type Call struct {
	// The host's id for this call (for logs; not the SIP Call-ID).
	CallID string
	// Where the call came from.
	Ingress Ingress
	// Packet source of the INVITE.
	Source Endpoint
	// Request-URI as received.
	RequestURI string
	// Caller number (A), after the ingress rewrite.
	ANumber string
	// Called number (B), after the ingress rewrite.
	BNumber string
	// Caller display name, if any.
	DisplayName *string
	From        Party
	To          Party
	// P-Asserted-Identity, if present.
	PAI *Party
	// Diversion entries, most recent first.
	Diversion []Party
	// Headers selected by the switch configuration (User-Agent, Subject,
	// Priority and X- headers by default).
	Headers []Header
	// Codecs offered in the SDP (upper-case encoding names, offer order).
	Codecs []string
	// Portability result for the B number, if the portability hook found one.
	Portability *PortabilityResult
	// When the call arrived.
	Time DateTime
}

// Header returns the value of the first header called name
// (case-insensitive).
func (c *Call) Header(name string) (string, bool) {
	for _, h := range c.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// DestinationKind says what a Destination names.
type DestinationKind uint8

// Destination kinds.
const (
	// DestUser: a user registered with the switch (AOR or user name).
	DestUser DestinationKind = iota
	// DestTrunk: a configured trunk.
	DestTrunk
	// DestTrunkGroup: a configured trunk group (the host picks the member).
	DestTrunkGroup
	// DestURI: an explicit SIP URI.
	DestURI
)

// Destination is where one attempt sends the call.
type Destination struct {
	Kind DestinationKind
	// User/AOR, trunk name, trunk group name or URI.
	Target string
}

// ToUser rings every contact of a registered user.
func ToUser(aor string) Destination { return Destination{DestUser, aor} }

// ToTrunk sends to a configured trunk.
func ToTrunk(name string) Destination { return Destination{DestTrunk, name} }

// ToTrunkGroup sends to a trunk group.
func ToTrunkGroup(name string) Destination { return Destination{DestTrunkGroup, name} }

// ToURI sends to an explicit SIP URI.
func ToURI(uri string) Destination { return Destination{DestURI, uri} }

// String renders the destination as "user:X", "trunk:X", "trunk-group:X" or
// "uri:X".
func (d Destination) String() string {
	switch d.Kind {
	case DestUser:
		return "user:" + d.Target
	case DestTrunk:
		return "trunk:" + d.Target
	case DestTrunkGroup:
		return "trunk-group:" + d.Target
	}
	return "uri:" + d.Target
}

// MediaMode is how media of an attempt is handled.
type MediaMode uint8

// Media modes.
const (
	// MediaRelay anchors RTP on the switch's relay.
	MediaRelay MediaMode = iota
	// MediaBypass passes SDP end to end.
	MediaBypass
)

// Attempt is one outbound attempt. Nil optional fields keep the host's
// defaults.
type Attempt struct {
	Destination Destination
	// New A number for this leg; nil keeps it.
	ANumber *string
	// New B number for this leg; nil keeps it.
	BNumber *string
	// New display name; nil keeps it.
	DisplayName *string
	// Headers to add to the outbound INVITE.
	AddHeaders []Header
	// Header names to remove (case-insensitive).
	RemoveHeaders []string
	// Ring timeout in milliseconds; nil = trunk/switch default.
	RingTimeoutMs *uint32
	// Relay or bypass; nil = trunk/switch default.
	Media *MediaMode
	// Codec allow list in preference order; nil = no filter.
	Codecs []string
}

// Try is a shorthand for an attempt to d with everything else default.
func Try(d Destination) Attempt { return Attempt{Destination: d} }

// CauseKind classifies why an attempt failed.
type CauseKind uint8

// Cause kinds.
const (
	// CauseStatus: a specific final status (Cause.Code).
	CauseStatus CauseKind = iota
	// CauseStatusClass: any status of class Cause.Code (4, 5 or 6).
	CauseStatusClass
	// CauseNoAnswer: ring timeout (or Timer B/F).
	CauseNoAnswer
	// CauseUnavailable: the destination could not be tried.
	CauseUnavailable
	// CauseLimitReached: the destination is at its call limit.
	CauseLimitReached
)

// Cause is a failure that moves on to the next attempt.
type Cause struct {
	Kind CauseKind
	// Status code (CauseStatus) or class 4/5/6 (CauseStatusClass).
	Code uint16
}

// Causes.
var (
	NoAnswer     = Cause{Kind: CauseNoAnswer}
	Unavailable  = Cause{Kind: CauseUnavailable}
	LimitReached = Cause{Kind: CauseLimitReached}
)

// OnStatus is the failure "final response code".
func OnStatus(code uint16) Cause { return Cause{Kind: CauseStatus, Code: code} }

// OnStatusClass is the failure "any final response of class 4, 5 or 6".
func OnStatusClass(class uint8) Cause { return Cause{Kind: CauseStatusClass, Code: uint16(class)} }

// PreferredCause says which failure the caller hears when all attempts fail.
type PreferredCause uint8

// Preferred causes.
const (
	FirstCause PreferredCause = iota
	LastCause
)

// RouteDecision is the answer of a [Router]: a [Forward], a [Reject] or a
// [Redirect].
type RouteDecision interface{ isRouteDecision() }

// Forward sends the call through attempts tried one after another.
type Forward struct {
	Attempts []Attempt
	// Failures that move on to the next attempt (Unavailable and
	// LimitReached always do).
	RetryOn []Cause
	// Which failure the caller hears when all attempts fail.
	PreferredCause PreferredCause
}

// Redirect answers 302 with these Contact URIs.
type Redirect []string

func (Forward) isRouteDecision()  {}
func (Reject) isRouteDecision()   {}
func (Redirect) isRouteDecision() {}

// ForwardTo forwards the call through the given attempts in order, retrying
// on no-answer and on any 5xx/6xx (the usual failover of an SBC route).
func ForwardTo(attempts ...Attempt) Forward {
	return Forward{
		Attempts: attempts,
		RetryOn:  []Cause{NoAnswer, OnStatusClass(5), OnStatusClass(6)},
	}
}

// Router decides where calls go (the `route` world).
type Router interface {
	Route(call *Call) (RouteDecision, error)
}

// RouterFunc adapts a function to [Router].
type RouterFunc func(call *Call) (RouteDecision, error)

// Route calls f.
func (f RouterFunc) Route(call *Call) (RouteDecision, error) { return f(call) }

// Initializer is implemented by handlers that validate and digest their
// configuration (JSON text, "{}" when none) once per instance, before any
// decision. An error refuses the plugin version at load time.
type Initializer interface {
	Init(config string) error
}

// ParseDestination parses the destination notation used in plugin
// configurations: "trunk:NAME", "trunk-group:NAME" (or "group:NAME"),
// "user:AOR", "uri:URI", a bare "sip:"/"sips:"/"tel:" URI, or a bare name
// (a trunk).
func ParseDestination(s string) (Destination, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Destination{}, fmt.Errorf("empty destination")
	}
	kind, rest, found := strings.Cut(s, ":")
	if !found {
		return ToTrunk(s), nil
	}
	if rest == "" {
		return Destination{}, fmt.Errorf("destination %q: empty %s name", s, kind)
	}
	switch strings.ToLower(kind) {
	case "trunk":
		return ToTrunk(rest), nil
	case "trunk-group", "group":
		return ToTrunkGroup(rest), nil
	case "user":
		return ToUser(rest), nil
	case "uri":
		return ToURI(rest), nil
	case "sip", "sips", "tel":
		return ToURI(s), nil
	}
	return Destination{}, fmt.Errorf("destination %q: unknown kind %q (want trunk:, trunk-group:, user:, uri:)", s, kind)
}

// ParseCause parses the failure notation used in plugin configurations:
// "no-answer", "unavailable", "limit-reached", a status code ("486") or a
// status class ("5xx").
func ParseCause(s string) (Cause, error) {
	switch t := strings.ToLower(strings.TrimSpace(s)); t {
	case "no-answer", "timeout":
		return NoAnswer, nil
	case "unavailable":
		return Unavailable, nil
	case "limit-reached", "limit":
		return LimitReached, nil
	case "4xx", "5xx", "6xx":
		return OnStatusClass(t[0] - '0'), nil
	default:
		code, err := strconv.ParseUint(t, 10, 16)
		if err != nil || code < 300 || code > 699 {
			return Cause{}, fmt.Errorf("cause %q: want no-answer, unavailable, limit-reached, 4xx/5xx/6xx or a status code 300..699", s)
		}
		return OnStatus(uint16(code)), nil
	}
}
