package strowger

import (
	"fmt"
	"time"
)

// Transport is the SIP transport a message arrived on or leaves by.
type Transport uint8

// Transports.
const (
	UDP Transport = iota
	TCP
	TLS
	WS
	WSS
)

// String returns the lower-case transport name, e.g. "udp".
func (t Transport) String() string {
	switch t {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	case TLS:
		return "tls"
	case WS:
		return "ws"
	case WSS:
		return "wss"
	}
	return fmt.Sprintf("transport(%d)", uint8(t))
}

// Endpoint is a network endpoint: IP literal, port and transport.
type Endpoint struct {
	IP        string
	Port      uint16
	Transport Transport
}

// IngressKind tells how the host classified a request's source.
type IngressKind uint8

// Ingress kinds.
const (
	// IngressUnknown: neither a trusted trunk nor an authenticated user.
	IngressUnknown IngressKind = iota
	// IngressTrunk: from a configured trunk; Ingress.Name is the trunk name.
	IngressTrunk
	// IngressUser: from a registered, authenticated user; Ingress.Name is
	// the address-of-record, e.g. "sip:1001@example.com".
	IngressUser
)

// Ingress is where a request entered the switch.
type Ingress struct {
	Kind IngressKind
	// Trunk name (IngressTrunk) or address-of-record (IngressUser).
	Name string
}

// FromTrunk is the ingress of a request from trunk name.
func FromTrunk(name string) Ingress { return Ingress{Kind: IngressTrunk, Name: name} }

// FromUser is the ingress of a request from the registered user aor.
func FromUser(aor string) Ingress { return Ingress{Kind: IngressUser, Name: aor} }

// Trunk returns the trunk name when the request came from a trunk.
func (i Ingress) Trunk() (string, bool) { return i.Name, i.Kind == IngressTrunk }

// User returns the address-of-record when the request came from a user.
func (i Ingress) User() (string, bool) { return i.Name, i.Kind == IngressUser }

// String renders the ingress as "trunk:NAME", "user:AOR" or "unknown".
func (i Ingress) String() string {
	switch i.Kind {
	case IngressTrunk:
		return "trunk:" + i.Name
	case IngressUser:
		return "user:" + i.Name
	}
	return "unknown"
}

// Header is a SIP header (canonical long name and raw value).
type Header struct {
	Name  string
	Value string
}

// Party is a party of the call as written in From, To,
// P-Asserted-Identity or Diversion.
type Party struct {
	// Full URI, e.g. "sip:+551133334444@carrier.example;user=phone".
	URI string
	// User part (the number for telephone URIs), %-decoded; may be empty.
	User string
	// Host part (empty for tel: URIs).
	Host string
	// Display name, unquoted; nil when absent.
	DisplayName *string
}

// DateTime is the wall-clock time as the host gives it to plugins: Unix
// milliseconds plus the fields broken down in the switch's local time zone.
type DateTime struct {
	UnixMs           int64
	UTCOffsetMinutes int32
	Year             uint16
	Month            uint8 // 1..12
	Day              uint8 // 1..31
	Weekday          uint8 // ISO 8601: 1 = Monday ... 7 = Sunday
	Hour             uint8
	Minute           uint8
	Second           uint8
}

// Time returns the instant as a time.Time in a fixed zone with the switch's
// UTC offset.
func (d DateTime) Time() time.Time {
	zone := time.FixedZone("", int(d.UTCOffsetMinutes)*60)
	return time.UnixMilli(d.UnixMs).In(zone)
}

// MinuteOfDay is the local time of day in minutes since midnight (0..1439).
func (d DateTime) MinuteOfDay() int { return int(d.Hour)*60 + int(d.Minute) }

// DateTimeOf breaks t down in its own location, the way the host does in the
// switch's time zone (handy in tests).
func DateTimeOf(t time.Time) DateTime {
	_, off := t.Zone()
	wd := uint8(t.Weekday())
	if wd == 0 {
		wd = 7
	}
	return DateTime{
		UnixMs:           t.UnixMilli(),
		UTCOffsetMinutes: int32(off / 60),
		Year:             uint16(t.Year()),
		Month:            uint8(t.Month()),
		Day:              uint8(t.Day()),
		Weekday:          wd,
		Hour:             uint8(t.Hour()),
		Minute:           uint8(t.Minute()),
		Second:           uint8(t.Second()),
	}
}

// PortabilityResult is the result of a number-portability lookup.
type PortabilityResult struct {
	// The number looked up, after the lookup's own normalisation.
	Number string
	// Carrier code owning the number (e.g. Brazilian RN1 "55321").
	Carrier string
	// The number to send to the network (e.g. "55" + RN1 + number).
	RoutingNumber string
	// True if ported away from the range owner.
	Ported bool
}

// Reject refuses a request with a SIP final response (400..699). It is a
// [RouteDecision] and an [AuthDecision].
type Reject struct {
	Code   uint16
	Reason string
}

// RejectWith returns a Reject; an empty reason is filled with the standard
// phrase for the code.
func RejectWith(code uint16, reason string) Reject {
	if reason == "" {
		reason = ReasonPhrase(code)
	}
	return Reject{Code: code, Reason: reason}
}

// ReasonPhrase is the standard SIP reason phrase for code ("" if unknown).
func ReasonPhrase(code uint16) string {
	switch code {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 410:
		return "Gone"
	case 480:
		return "Temporarily Unavailable"
	case 484:
		return "Address Incomplete"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 604:
		return "Does Not Exist Anywhere"
	}
	return ""
}

// Ptr returns a pointer to v: a short way to fill optional fields, e.g.
// Attempt{BNumber: strowger.Ptr("5511...")}.
func Ptr[T any](v T) *T { return &v }
