//! DTMF: how a leg carries digits, and the RFC 4733 event codes.

use serde::{Deserialize, Serialize};

/// DTMF transport of a leg or trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    /// RFC 2833 / 4733 telephone-event in RTP.
    #[default]
    Rfc2833,
    /// SIP INFO (application/dtmf-relay).
    Info,
    /// In-band audio tones.
    Inband,
}

/// The `application/dtmf-relay` `Signal` of an RFC 4733 event code
/// (`0`-`9`, `*`, `#`, `A`-`D`, `!` for flash); `None` for other events.
pub fn dtmf_signal(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        16 => Some('!'),
        _ => None,
    }
}

/// Inverse of [`dtmf_signal`] (letters in either case).
pub fn dtmf_event(signal: char) -> Option<u8> {
    match signal.to_ascii_uppercase() {
        c @ '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        c @ 'A'..='D' => Some(c as u8 - b'A' + 12),
        '!' => Some(16),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_maps_back_to_its_event() {
        for e in 0..=16u8 {
            let s = dtmf_signal(e).unwrap();
            assert_eq!(dtmf_event(s), Some(e));
            assert_eq!(dtmf_event(s.to_ascii_lowercase()), Some(e));
        }
        assert_eq!(dtmf_signal(17), None);
        assert_eq!(dtmf_event('x'), None);
    }
}
