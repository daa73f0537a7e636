//! strowger-admin (skeleton; see its issue).
