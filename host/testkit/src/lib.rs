//! strowger-testkit (skeleton; see its issue).
