//! strowger-plugin (skeleton; see its issue).
