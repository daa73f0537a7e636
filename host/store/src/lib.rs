//! strowger-store (skeleton; see its issue).
