//! strowger-media: the built-in RTP/RTCP relay (media anchoring) and SDP
//! rewriting of the Strowger switch.
//!
//! - [`sdp`]: a line-oriented SDP parser/rewriter that keeps every line it
//!   does not edit byte-exact.
//! - [`codec`]: codec allow-list filtering of offers and answers.
//! - [`MediaRelay`] / [`Session`]: port pool, latching, counters, media
//!   timeout, hold/re-INVITE; a multi-threaded epoll + recvmmsg/sendmmsg
//!   fast path.
//! - [`CallMedia`]: the relay keyed by the B2BUA's (call, outbound leg) ids.
//! - [`ng`]: a subset of rtpengine's ng control protocol (bencode over UDP),
//!   used by the benchmark and usable from Kamailio's `rtpengine` module.
//!
//! See `host/media/README.md` for how the switch drives it.

pub mod calls;
pub mod codec;
pub mod net;
pub mod ng;
mod pool;
mod relay;
pub mod sdp;
pub mod stats;
mod stream;
mod worker;

pub use calls::CallMedia;
pub use codec::CodecPolicy;
pub use net::IpNet;
pub use pool::PortPool;
pub use relay::{
    MediaConfig, MediaError, MediaEvent, MediaRelay, RelayStats, Session, SessionOptions,
    SessionStats, StreamStats, dtmf_event, dtmf_signal,
};
pub use stream::{Latching, Leg, LegStats};
