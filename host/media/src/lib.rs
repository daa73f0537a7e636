//! strowger-media (skeleton; see its issue).
