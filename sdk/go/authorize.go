package strowger

// Credentials is what the host's digest check found in a request.
type Credentials uint8

// Credential states.
const (
	// CredentialsNone: no credentials for our realm, or over a nonce not
	// issued to this source address.
	CredentialsNone Credentials = iota
	// CredentialsValid: checked by the host and correct.
	CredentialsValid
	// CredentialsInvalid: wrong user or response.
	CredentialsInvalid
	// CredentialsStale: correct, over an expired nonce or a nonce-count
	// already used (a replay).
	CredentialsStale
)

// RegistrationState is the registration state of an address-of-record.
type RegistrationState uint8

// Registration states.
const (
	NotRegistered RegistrationState = iota
	Registered
	RegistrationExpired
)

// AuthRequest is a request that needs authorization (every REGISTER, and
// initial requests from sources that are not trusted trunks).
type AuthRequest struct {
	// SIP method, e.g. "REGISTER", "INVITE".
	Method string
	// Address-of-record: To URI for REGISTER, From URI otherwise.
	AOR    string
	User   string
	Domain string
	// Username of the credentials, if any were sent.
	AuthUser    *string
	Credentials Credentials
	// True if the switch has credentials for AuthUser (or User).
	KnownUser bool
	Source    Endpoint
	Ingress   Ingress
	UserAgent *string
	// REGISTER: the Contact URIs ("*" for a wildcard un-register).
	Contacts []string
	// REGISTER: requested expiry in seconds, if given.
	Expires      *uint32
	Registration RegistrationState
	ContactCount uint32
	Time         DateTime
}

// DigestAlgorithm is a digest algorithm the host can challenge with.
type DigestAlgorithm uint8

// Digest algorithms.
const (
	MD5 DigestAlgorithm = iota
	SHA256
)

// AuthDecision is the answer of an [Authorizer]: [Accept], [Challenge],
// [Reject] or [Drop].
type AuthDecision interface{ isAuthDecision() }

// Accept lets the request through (waiving authentication when the
// credentials are not valid), with optional registration limits.
type Accept struct {
	MaxExpires  *uint32
	MinExpires  *uint32
	MaxContacts *uint32
}

// Challenge answers 401/407 with digest challenges.
type Challenge struct {
	// Realm to offer; nil = the switch's default domain.
	Realm *string
	// Algorithms in preference order; empty = switch default.
	Algorithms []DigestAlgorithm
}

// Drop sends no answer at all (scanners, floods).
type Drop struct{}

func (Accept) isAuthDecision()    {}
func (Challenge) isAuthDecision() {}
func (Reject) isAuthDecision()    {}
func (Drop) isAuthDecision()      {}

// Authorizer decides on registrations and requests (the `authorize` world).
type Authorizer interface {
	Authorize(req *AuthRequest) (AuthDecision, error)
}

// AuthorizerFunc adapts a function to [Authorizer].
type AuthorizerFunc func(req *AuthRequest) (AuthDecision, error)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(req *AuthRequest) (AuthDecision, error) { return f(req) }
