package strowger

// PortabilityQuery is a number to look up.
type PortabilityQuery struct {
	// Called number (B) after the ingress rewrite.
	Number string
	// Calling number (A), for context.
	ANumber string
	Ingress Ingress
	Time    DateTime
}

// Portability looks numbers up (the `portability` world). A nil result means
// the number is unknown to the data: the call goes on without one.
type Portability interface {
	Lookup(q *PortabilityQuery) (*PortabilityResult, error)
}

// PortabilityFunc adapts a function to [Portability].
type PortabilityFunc func(q *PortabilityQuery) (*PortabilityResult, error)

// Lookup calls f.
func (f PortabilityFunc) Lookup(q *PortabilityQuery) (*PortabilityResult, error) { return f(q) }
