//! strowger-switch (skeleton; see its issue).
