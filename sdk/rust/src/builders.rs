//! Convenience constructors on the generated WIT types, as extension
//! traits (the types live in the bindings crates). They are re-exported by
//! [`crate::route`], [`crate::authorize`] and [`crate::prelude`].

use crate::authorize::{Accept, AuthDecision, Challenge};
use crate::route::{Attempt, Destination, Forward, PreferredCause, RouteDecision};
use crate::{Header, Ingress, Reject};

/// Constructor for [`Reject`].
pub trait RejectExt {
    /// A rejection with `code` and `reason`.
    fn new(code: u16, reason: impl Into<String>) -> Self;
}

impl RejectExt for Reject {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Reject {
            code,
            reason: reason.into(),
        }
    }
}

/// Constructor for [`Header`].
pub trait HeaderExt {
    /// A header `name: value`.
    fn new(name: impl Into<String>, value: impl Into<String>) -> Self;
}

impl HeaderExt for Header {
    fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Constructor for [`Attempt`].
pub trait AttemptExt {
    /// An attempt to `destination` that changes nothing else.
    fn to(destination: Destination) -> Self;
}

impl AttemptExt for Attempt {
    fn to(destination: Destination) -> Self {
        Attempt {
            destination,
            a_number: None,
            b_number: None,
            display_name: None,
            add_headers: Vec::new(),
            remove_headers: Vec::new(),
            ring_timeout_ms: None,
            media: None,
            codecs: None,
        }
    }
}

/// Constructors for [`RouteDecision`].
pub trait RouteDecisionExt {
    /// Forward over `attempts` (serial), retrying only when the host always
    /// does (destination unavailable or full); first failure reported.
    fn forward(attempts: Vec<Attempt>) -> Self;
    /// Reject with `code` and `reason`.
    fn reject(code: u16, reason: impl Into<String>) -> Self;
}

impl RouteDecisionExt for RouteDecision {
    fn forward(attempts: Vec<Attempt>) -> Self {
        RouteDecision::Forward(Forward {
            attempts,
            retry_on: Vec::new(),
            preferred_cause: PreferredCause::First,
        })
    }

    fn reject(code: u16, reason: impl Into<String>) -> Self {
        RouteDecision::Reject(Reject::new(code, reason))
    }
}

/// Constructors for [`AuthDecision`].
pub trait AuthDecisionExt {
    /// Accept without limits.
    fn accept() -> Self;
    /// Challenge with the switch's default realm and algorithms.
    fn challenge() -> Self;
    /// Reject with `code` and `reason`.
    fn reject(code: u16, reason: impl Into<String>) -> Self;
}

impl AuthDecisionExt for AuthDecision {
    fn accept() -> Self {
        AuthDecision::Accept(Accept {
            max_expires: None,
            min_expires: None,
            max_contacts: None,
        })
    }

    fn challenge() -> Self {
        AuthDecision::Challenge(Challenge {
            realm: None,
            algorithms: Vec::new(),
        })
    }

    fn reject(code: u16, reason: impl Into<String>) -> Self {
        AuthDecision::Reject(Reject::new(code, reason))
    }
}

/// Accessors for [`Ingress`].
pub trait IngressExt {
    /// The trunk name if the call came from a trunk.
    fn trunk(&self) -> Option<&str>;
    /// The address-of-record if the call came from a registered user.
    fn user(&self) -> Option<&str>;
}

impl IngressExt for Ingress {
    fn trunk(&self) -> Option<&str> {
        match self {
            Ingress::Trunk(t) => Some(t),
            _ => None,
        }
    }

    fn user(&self) -> Option<&str> {
        match self {
            Ingress::User(u) => Some(u),
            _ => None,
        }
    }
}
