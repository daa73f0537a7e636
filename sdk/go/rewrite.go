package strowger

// Direction is the side of the switch the numbers are on.
type Direction uint8

// Directions.
const (
	// Inbound: as received, before routing (normalise to internal form).
	Inbound Direction = iota
	// Outbound: as sent on an outbound leg (convert for the egress trunk).
	Outbound
)

// Numbers are the numbers of a call leg.
type Numbers struct {
	ANumber     string
	BNumber     string
	DisplayName *string
}

// RewriteRequest asks to rewrite the numbers of a leg.
type RewriteRequest struct {
	Direction Direction
	// Trunk the call came in on (Inbound) or leaves by (Outbound); nil for
	// registered users.
	Trunk   *string
	Ingress Ingress
	Numbers Numbers
	Time    DateTime
}

// Rewriter rewrites numbers (the `rewrite` world): return the numbers,
// unchanged ones as given.
type Rewriter interface {
	Rewrite(req *RewriteRequest) (Numbers, error)
}

// RewriterFunc adapts a function to [Rewriter].
type RewriterFunc func(req *RewriteRequest) (Numbers, error)

// Rewrite calls f.
func (f RewriterFunc) Rewrite(req *RewriteRequest) (Numbers, error) { return f(req) }
