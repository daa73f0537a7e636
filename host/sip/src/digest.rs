//! Digest authentication (RFC 2617 / 7616 / 8760). Work in progress.
