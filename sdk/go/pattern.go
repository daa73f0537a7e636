package strowger

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Pattern is a compiled Asterisk extension pattern, the syntax dial plans
// and FreePBX routes use:
//
//	_NXXNXXXXXX   leading "_" marks a pattern; without it the text must match exactly
//	X             any digit 0-9
//	Z             any digit 1-9
//	N             any digit 2-9
//	[1-5] [137]   one character of the set (ranges allowed)
//	.             one or more characters (ends the pattern)
//	!             zero or more characters (ends the pattern)
//
// Letters X, Z, N are case-insensitive; "-" outside brackets is ignored
// (readability, as in Asterisk). Any other character matches itself.
type Pattern struct {
	src   string
	elems []patElem
	// literal: the whole pattern is one exact string (no leading "_").
	literal bool
	tail    byte // 0, '.' or '!'
}

type patElem struct {
	set [4]uint64 // bitmap over bytes 0..255
	n   int       // number of members (for specificity)
}

func (e *patElem) add(c byte) {
	if e.set[c/64]&(1<<(c%64)) == 0 {
		e.set[c/64] |= 1 << (c % 64)
		e.n++
	}
}

func (e *patElem) has(c byte) bool { return e.set[c/64]&(1<<(c%64)) != 0 }

func rangeElem(lo, hi byte) patElem {
	var e patElem
	for c := int(lo); c <= int(hi); c++ {
		e.add(byte(c))
	}
	return e
}

// CompilePattern compiles an Asterisk pattern (see [Pattern]).
func CompilePattern(s string) (*Pattern, error) {
	p := &Pattern{src: s}
	if !strings.HasPrefix(s, "_") {
		p.literal = true
		return p, nil
	}
	body := s[1:]
	if body == "" {
		return nil, fmt.Errorf("pattern %q: empty after '_'", s)
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if p.tail != 0 {
			return nil, fmt.Errorf("pattern %q: nothing may follow %q", s, p.tail)
		}
		switch c {
		case 'X', 'x':
			p.elems = append(p.elems, rangeElem('0', '9'))
		case 'Z', 'z':
			p.elems = append(p.elems, rangeElem('1', '9'))
		case 'N', 'n':
			p.elems = append(p.elems, rangeElem('2', '9'))
		case '.', '!':
			p.tail = c
		case '-':
		case '[':
			end := strings.IndexByte(body[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("pattern %q: unclosed '['", s)
			}
			set := body[i+1 : i+1+end]
			if set == "" {
				return nil, fmt.Errorf("pattern %q: empty '[]'", s)
			}
			var e patElem
			for j := 0; j < len(set); j++ {
				if j+2 < len(set) && set[j+1] == '-' {
					lo, hi := set[j], set[j+2]
					if lo > hi {
						return nil, fmt.Errorf("pattern %q: bad range %c-%c", s, lo, hi)
					}
					r := rangeElem(lo, hi)
					for k := range e.set {
						e.set[k] |= r.set[k]
					}
					j += 2
					continue
				}
				e.add(set[j])
			}
			e.n = 0
			for c := 0; c < 256; c++ {
				if e.has(byte(c)) {
					e.n++
				}
			}
			p.elems = append(p.elems, e)
			i += end + 1
		case ']':
			return nil, fmt.Errorf("pattern %q: unmatched ']'", s)
		default:
			var e patElem
			e.add(c)
			p.elems = append(p.elems, e)
		}
	}
	return p, nil
}

// MustCompilePattern is CompilePattern that panics on error (for constants).
func MustCompilePattern(s string) *Pattern {
	p, err := CompilePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern's source text.
func (p *Pattern) String() string { return p.src }

// Match reports whether number matches the whole pattern.
func (p *Pattern) Match(number string) bool {
	if p.literal {
		return number == p.src
	}
	if len(number) < len(p.elems) {
		return false
	}
	for i := range p.elems {
		if !p.elems[i].has(number[i]) {
			return false
		}
	}
	rest := len(number) - len(p.elems)
	switch p.tail {
	case '.':
		return rest >= 1
	case '!':
		return true
	}
	return rest == 0
}

// MatchPattern compiles pattern and matches number against it; a bad
// pattern does not match.
func MatchPattern(pattern, number string) bool {
	p, err := CompilePattern(pattern)
	return err == nil && p.Match(number)
}

// moreSpecific orders patterns the way Asterisk sorts a context: exact
// extensions first, then position by position the smaller character set,
// then fixed length before "." before "!".
func (p *Pattern) moreSpecific(q *Pattern) bool {
	if p.literal != q.literal {
		return p.literal
	}
	if p.literal {
		return p.src < q.src
	}
	for i := 0; i < len(p.elems) && i < len(q.elems); i++ {
		if p.elems[i].n != q.elems[i].n {
			return p.elems[i].n < q.elems[i].n
		}
	}
	if len(p.elems) != len(q.elems) {
		return len(p.elems) > len(q.elems)
	}
	rank := func(t byte) int {
		switch t {
		case '.':
			return 1
		case '!':
			return 2
		}
		return 0
	}
	if rank(p.tail) != rank(q.tail) {
		return rank(p.tail) < rank(q.tail)
	}
	return p.src < q.src
}

// BestMatch returns the index of the most specific pattern in patterns that
// matches number, in Asterisk's order (see [Pattern]), or -1.
func BestMatch(patterns []*Pattern, number string) int {
	best := -1
	for i, p := range patterns {
		if p.Match(number) && (best < 0 || p.moreSpecific(patterns[best])) {
			best = i
		}
	}
	return best
}

// DialPattern is a FreePBX outbound-route dial pattern,
// "prepend+prefix|match/callerid": the dialled number must start with
// prefix and the rest must match the match pattern (Asterisk syntax without
// the leading "_"); the number sent is prepend + rest. The optional caller
// id part is a pattern the caller's number must match. Examples:
// "9|NXXNXXXXXX" (dial 9 for an outside line), "0055+0|XXXXXXXXXX",
// "|1NXXNXXXXXX/1001".
type DialPattern struct {
	Prepend  string
	Prefix   string
	match    *Pattern // nil = anything
	callerID *Pattern // nil = any caller
	src      string
}

// ParseDialPattern parses a FreePBX dial pattern (see [DialPattern]).
func ParseDialPattern(s string) (*DialPattern, error) {
	d := &DialPattern{src: s}
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		cid := rest[i+1:]
		rest = rest[:i]
		if cid != "" {
			p, err := CompilePattern("_" + cid)
			if err != nil {
				return nil, fmt.Errorf("dial pattern %q: caller id: %w", s, err)
			}
			d.callerID = p
		}
	}
	head, match := "", rest
	if i := strings.IndexByte(rest, '|'); i >= 0 {
		head, match = rest[:i], rest[i+1:]
	}
	if i := strings.IndexByte(head, '+'); i >= 0 {
		d.Prepend, d.Prefix = head[:i], head[i+1:]
	} else {
		d.Prefix = head
	}
	if strings.IndexByte(match, '+') >= 0 && !strings.Contains(rest, "|") {
		// "prepend+match" without a prefix.
		i := strings.IndexByte(match, '+')
		d.Prepend, match = match[:i], match[i+1:]
	}
	if match != "" {
		p, err := CompilePattern("_" + match)
		if err != nil {
			return nil, fmt.Errorf("dial pattern %q: %w", s, err)
		}
		d.match = p
	}
	return d, nil
}

// String returns the pattern's source text.
func (d *DialPattern) String() string { return d.src }

// Apply matches number (and the caller's number, when the pattern has a
// caller id part) and returns the number to send.
func (d *DialPattern) Apply(number, caller string) (string, bool) {
	if !strings.HasPrefix(number, d.Prefix) {
		return "", false
	}
	rest := number[len(d.Prefix):]
	if d.match != nil && !d.match.Match(rest) {
		return "", false
	}
	if d.callerID != nil && !d.callerID.Match(caller) {
		return "", false
	}
	return d.Prepend + rest, true
}

// ReplacePrefix replaces the leading from of number by to; ok is false (and
// number returned unchanged) when number does not start with from. Typical
// normalisations: ReplacePrefix(n, "0", "+55"), ReplacePrefix(n, "+55", "0").
func ReplacePrefix(number, from, to string) (string, bool) {
	if !strings.HasPrefix(number, from) {
		return number, false
	}
	return to + number[len(from):], true
}

// Subst is a compiled sed/Kamailio-style substitution "/regex/replacement/flags":
// any delimiter may be used (the first character), the replacement refers to
// groups as $1, ${name} or \1, and flags are "i" (ignore case) and "g"
// (replace every match; default: the first only).
type Subst struct {
	re     *regexp.Regexp
	repl   string
	global bool
	src    string
}

var backref = regexp.MustCompile(`\\([0-9])`)

// ParseSubst compiles a substitution expression (see [Subst]).
func ParseSubst(expr string) (*Subst, error) {
	if len(expr) < 3 {
		return nil, fmt.Errorf("subst %q: want /regex/replacement/", expr)
	}
	delim := expr[0]
	parts := splitUnescaped(expr[1:], delim)
	if len(parts) != 3 {
		return nil, fmt.Errorf("subst %q: want %cregex%creplacement%c[flags]", expr, delim, delim, delim)
	}
	reSrc, repl, flags := parts[0], parts[1], parts[2]
	s := &Subst{src: expr}
	for _, f := range flags {
		switch f {
		case 'i':
			reSrc = "(?i)" + reSrc
		case 'g':
			s.global = true
		default:
			return nil, fmt.Errorf("subst %q: unknown flag %q", expr, f)
		}
	}
	re, err := regexp.Compile(reSrc)
	if err != nil {
		return nil, fmt.Errorf("subst %q: %w", expr, err)
	}
	s.re = re
	s.repl = backref.ReplaceAllString(repl, "$${$1}")
	if n := maxGroupRef(s.repl); n > re.NumSubexp() {
		return nil, fmt.Errorf("subst %q: refers to group %d, regex has %d", expr, n, re.NumSubexp())
	}
	return s, nil
}

// MustParseSubst is ParseSubst that panics on error.
func MustParseSubst(expr string) *Subst {
	s, err := ParseSubst(expr)
	if err != nil {
		panic(err)
	}
	return s
}

// String returns the expression's source text.
func (s *Subst) String() string { return s.src }

// Apply substitutes in in; ok is false (and in returned) when the regex does
// not match.
func (s *Subst) Apply(in string) (string, bool) {
	if !s.global {
		m := s.re.FindStringSubmatchIndex(in)
		if m == nil {
			return in, false
		}
		out := s.re.ExpandString(nil, s.repl, in, m)
		return in[:m[0]] + string(out) + in[m[1]:], true
	}
	if !s.re.MatchString(in) {
		return in, false
	}
	return s.re.ReplaceAllString(in, s.repl), true
}

func splitUnescaped(s string, delim byte) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == delim {
			cur.WriteByte(delim)
			i++
			continue
		}
		if c == delim {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return append(parts, cur.String())
}

var groupRef = regexp.MustCompile(`\$\{?([0-9]+)\}?`)

func maxGroupRef(repl string) int {
	n := 0
	for _, m := range groupRef.FindAllStringSubmatch(repl, -1) {
		if v, err := strconv.Atoi(m[1]); err == nil && v > n {
			n = v
		}
	}
	return n
}
