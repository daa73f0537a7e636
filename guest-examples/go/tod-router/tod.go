package main

import (
	"fmt"
	"strconv"
	"strings"

	strowger "strowger.dev/sdk/go"
)

// Config is the plugin configuration (JSON), e.g.
//
//	{
//	  "primary": "trunk:carrier-a",
//	  "overflow": "trunk:carrier-b",
//	  "windows": [{"days": "mon-fri", "start": "08:00", "end": "18:00"},
//	              {"days": "sat", "start": "09:00", "end": "13:00"}],
//	  "holidays": ["12-25", "2026-11-20"],
//	  "retry_on": ["no-answer", "5xx", "6xx", "486"],
//	  "primary_ring_timeout_ms": 20000
//	}
//
// Inside a window the call goes to primary, and on one of the retry_on
// failures it overflows to overflow; outside every window (or on a holiday)
// it goes straight to overflow. This is the "time restriction" of Khomp
// SBC routes. A window whose end is before its start crosses midnight
// (22:00-06:00); the days are those on which the window starts.
type Config struct {
	Primary  string   `json:"primary"`
	Overflow string   `json:"overflow"`
	Windows  []Window `json:"windows"`
	// Holidays: "MM-DD" every year, or "YYYY-MM-DD".
	Holidays []string `json:"holidays,omitempty"`
	// Failures that overflow from primary to overflow (default: no-answer,
	// 5xx, 6xx).
	RetryOn []string `json:"retry_on,omitempty"`
	// Ring timeout of the primary attempt before overflowing.
	PrimaryRingTimeoutMs uint32 `json:"primary_ring_timeout_ms,omitempty"`
}

// Window is a weekly time window.
type Window struct {
	// "mon-fri", "sat,sun", "mon,wed-fri", "all"/"" (every day).
	Days  string `json:"days"`
	Start string `json:"start"` // "HH:MM"
	End   string `json:"end"`   // "HH:MM"; "24:00" = end of day
}

type window struct {
	days       [8]bool // index: ISO weekday 1..7
	start, end int     // minutes of day
}

// plan is the validated, digested configuration.
type plan struct {
	primary, overflow strowger.Destination
	windows           []window
	holidays          map[string]bool
	retryOn           []strowger.Cause
	ringTimeout       *uint32
}

var weekdays = map[string]int{"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}

func parseDays(s string) ([8]bool, error) {
	var d [8]bool
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "all" || s == "*" {
		for i := 1; i <= 7; i++ {
			d[i] = true
		}
		return d, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, ok := weekdays[lo]
		if !ok {
			return d, fmt.Errorf("days %q: unknown day %q", s, lo)
		}
		b := a
		if isRange {
			if b, ok = weekdays[hi]; !ok {
				return d, fmt.Errorf("days %q: unknown day %q", s, hi)
			}
		}
		for i := a; ; i = i%7 + 1 { // ranges may wrap: "fri-mon"
			d[i] = true
			if i == b {
				break
			}
		}
	}
	return d, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM (00:00..24:00)", s)
	}
	return hh*60 + mm, nil
}

func newPlan(c Config) (*plan, error) {
	p := &plan{holidays: map[string]bool{}}
	var err error
	if c.Primary == "" || c.Overflow == "" {
		return nil, fmt.Errorf("both \"primary\" and \"overflow\" are required")
	}
	if p.primary, err = strowger.ParseDestination(c.Primary); err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	if p.overflow, err = strowger.ParseDestination(c.Overflow); err != nil {
		return nil, fmt.Errorf("overflow: %w", err)
	}
	if len(c.Windows) == 0 {
		return nil, fmt.Errorf("at least one window is required")
	}
	for i, w := range c.Windows {
		var pw window
		if pw.days, err = parseDays(w.Days); err != nil {
			return nil, fmt.Errorf("windows[%d]: %w", i, err)
		}
		if pw.start, err = parseClock(w.Start); err != nil {
			return nil, fmt.Errorf("windows[%d].start: %w", i, err)
		}
		if pw.end, err = parseClock(w.End); err != nil {
			return nil, fmt.Errorf("windows[%d].end: %w", i, err)
		}
		if pw.start == pw.end {
			return nil, fmt.Errorf("windows[%d]: start equals end", i)
		}
		p.windows = append(p.windows, pw)
	}
	for _, h := range c.Holidays {
		ok := len(h) == 5 && h[2] == '-' || len(h) == 10 && h[4] == '-' && h[7] == '-'
		if !ok {
			return nil, fmt.Errorf("holiday %q: want MM-DD or YYYY-MM-DD", h)
		}
		p.holidays[h] = true
	}
	retry := c.RetryOn
	if retry == nil {
		retry = []string{"no-answer", "5xx", "6xx"}
	}
	for _, r := range retry {
		cause, err := strowger.ParseCause(r)
		if err != nil {
			return nil, fmt.Errorf("retry_on: %w", err)
		}
		p.retryOn = append(p.retryOn, cause)
	}
	if c.PrimaryRingTimeoutMs > 0 {
		p.ringTimeout = strowger.Ptr(c.PrimaryRingTimeoutMs)
	}
	return p, nil
}

// inside reports whether local time t falls in one of the windows and is
// not a holiday.
func (p *plan) inside(t strowger.DateTime) bool {
	md := fmt.Sprintf("%02d-%02d", t.Month, t.Day)
	if p.holidays[md] || p.holidays[fmt.Sprintf("%04d-%s", t.Year, md)] {
		return false
	}
	now := t.MinuteOfDay()
	yesterday := int(t.Weekday) - 1 // previous ISO weekday: Monday -> Sunday
	if yesterday < 1 {
		yesterday = 7
	}
	for _, w := range p.windows {
		if w.start < w.end {
			if w.days[t.Weekday] && now >= w.start && now < w.end {
				return true
			}
			continue
		}
		// Crosses midnight: the evening part today, the morning part of a
		// window that started yesterday.
		if w.days[t.Weekday] && now >= w.start || w.days[yesterday] && now < w.end {
			return true
		}
	}
	return false
}

// route is the decision, a pure function of the plan and the call.
func (p *plan) route(call *strowger.Call) strowger.RouteDecision {
	if !p.inside(call.Time) {
		return strowger.Forward{
			Attempts: []strowger.Attempt{strowger.Try(p.overflow)},
			RetryOn:  p.retryOn,
		}
	}
	primary := strowger.Try(p.primary)
	primary.RingTimeoutMs = p.ringTimeout
	return strowger.Forward{
		Attempts:       []strowger.Attempt{primary, strowger.Try(p.overflow)},
		RetryOn:        p.retryOn,
		PreferredCause: strowger.LastCause,
	}
}
