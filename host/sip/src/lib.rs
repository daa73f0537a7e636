//! strowger-sip: the sans-IO SIP core of Strowger.
//!
//! No sockets, no tokio, no clocks: everything here is pure code driven by the
//! caller.
//!
//! * [`parse`] / [`parse_with`]: zero-copy parser (header values are slices of
//!   the received [`bytes::Bytes`]); [`frame`] finds message boundaries on
//!   stream transports.
//! * [`Message`]: typed accessors (Via, From/To, CSeq, Contact, Route, ...)
//!   and generic header access by case-insensitive (or compact) name.
//! * [`Uri`], [`NameAddr`], [`Via`], [`Contact`], [`Params`]: borrowed value
//!   types that parse lazily from header text.
//! * [`ResponseBuilder`], [`RequestBuilder`], [`MessageEditor`]: write SIP
//!   directly into an output buffer.
//! * [`ids`]: random tags, branches and Call-IDs.
//! * [`digest`]: RFC 2617/7616/8760 digest authentication (server + client).
//! * [`transaction`]: RFC 3261 §17 (+ RFC 6026) transaction state machines.

#![forbid(unsafe_code)]

mod builder;
pub mod digest;
mod header;
pub mod ids;
mod message;
mod method;
pub mod transaction;
mod uri;
mod value;

pub use builder::{MessageEditor, RequestBuilder, ResponseBuilder, reason_phrase};
pub use header::HeaderName;
pub use message::{
    Frame, Header, Message, ParseError, ParseErrorKind, ParseOptions, StartLine, StreamFramer,
    frame, parse, parse_with,
};
pub use method::{Method, Transport};
pub use uri::{Scheme, Uri, percent_decode};
pub use value::{CSeq, Contact, NameAddr, Params, ValueError, Via, split_list, unquote};
