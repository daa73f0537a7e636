//! strowger-sip (skeleton; see its issue).
