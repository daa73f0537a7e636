//! Media seam. The RTP relay (`strowger-media`) plugs in here; until it
//! does, SDP passes through untouched.

/// Which way an SDP body travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpDirection {
    /// From the caller (A leg) towards an outbound leg.
    Offer,
    /// From an outbound leg back to the caller.
    Answer,
}

/// Rewrites SDP bodies of a call (anchoring media on a relay, filtering
/// codecs). Called on the core's thread: implementations must not block.
pub trait MediaHandler: Send {
    /// Rewrites `sdp` for call `call` / leg `leg` travelling in `dir`.
    /// `relay` asks for media anchoring; `codecs` is an allow list in
    /// preference order. Returns the body to send.
    fn rewrite(
        &mut self,
        call: u64,
        leg: u64,
        dir: SdpDirection,
        sdp: &[u8],
        relay: bool,
        codecs: Option<&[String]>,
    ) -> Vec<u8>;
    /// The call ended: release its resources.
    fn release(&mut self, call: u64);
}

/// Pass-through: SDP is relayed as is, media flows end to end.
#[derive(Debug, Default)]
pub struct PassThrough;

impl MediaHandler for PassThrough {
    fn rewrite(
        &mut self,
        _call: u64,
        _leg: u64,
        _dir: SdpDirection,
        sdp: &[u8],
        _relay: bool,
        _codecs: Option<&[String]>,
    ) -> Vec<u8> {
        sdp.to_vec()
    }
    fn release(&mut self, _call: u64) {}
}

/// Codec names offered in an SDP body (rtpmap encoding names, upper-cased,
/// in offer order; static payload types 0/8/9/18 named when no rtpmap).
pub fn offered_codecs(sdp: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(sdp) else {
        return Vec::new();
    };
    let mut pts: Vec<String> = Vec::new();
    let mut maps: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=audio ") {
            pts.extend(m.split_whitespace().skip(2).map(str::to_string));
        } else if let Some(r) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, enc)) = r.split_once(' ')
        {
            let name = enc.split('/').next().unwrap_or("").to_ascii_uppercase();
            maps.push((pt.to_string(), name));
        }
    }
    pts.iter()
        .filter_map(|pt| {
            maps.iter()
                .find(|(p, _)| p == pt)
                .map(|(_, n)| n.clone())
                .or_else(|| match pt.as_str() {
                    "0" => Some("PCMU".into()),
                    "8" => Some("PCMA".into()),
                    "9" => Some("G722".into()),
                    "18" => Some("G729".into()),
                    _ => None,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn codecs_in_offer_order() {
        let sdp = b"v=0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        assert_eq!(
            super::offered_codecs(sdp),
            vec!["PCMA", "PCMU", "TELEPHONE-EVENT"]
        );
    }
}
