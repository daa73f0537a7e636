//! Codec policy: filter offers and answers by an allow list.
//!
//! Order: as the WIT contract says (`attempt.codecs`: "filtered to these, in
//! this order of preference"), a non-empty allow list also **orders** the
//! offer: kept codecs follow the allow list's order; several payload types
//! of one codec and `telephone-event` kept for DTMF without being listed
//! keep the offer's relative order (DTMF/auxiliaries after the listed
//! codecs). With an empty allow list the offer's order is untouched. The
//! answer keeps the answerer's order.
//!
//! Only `m=audio` sections over RTP are filtered; `video`, `image` (T.38
//! udptl) and others pass unchanged. `telephone-event` (RFC 4733 DTMF) is
//! kept when [`CodecPolicy::dtmf`] is true or the allow list names it;
//! comfort noise (`CN`) only when allowed by name. An audio section left
//! without a real codec is an error, which the switch turns into 488.

use crate::sdp::{MediaSection, Sdp};

/// Which codecs may pass.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CodecPolicy {
    /// Allowed encoding names, case-insensitive (`"PCMU"`, `"pcma"`, `"opus"`),
    /// in order of preference. Empty = every codec allowed, order untouched.
    pub allow: Vec<String>,
    /// Keep `telephone-event` (RFC 4733 DTMF) whenever it is offered.
    pub dtmf: bool,
}

impl Default for CodecPolicy {
    fn default() -> Self {
        CodecPolicy::allow_all()
    }
}

impl CodecPolicy {
    /// No filtering (bridge mode).
    pub fn allow_all() -> Self {
        CodecPolicy {
            allow: Vec::new(),
            dtmf: true,
        }
    }

    /// Allow the named codecs (plus DTMF).
    pub fn allow<S: AsRef<str>>(names: &[S]) -> Self {
        CodecPolicy {
            allow: names.iter().map(|s| s.as_ref().to_string()).collect(),
            dtmf: true,
        }
    }

    /// The same policy without `telephone-event` (a leg doing in-band DTMF).
    pub fn without_dtmf(&self) -> Self {
        CodecPolicy {
            allow: self
                .allow
                .iter()
                .filter(|a| !a.eq_ignore_ascii_case("telephone-event"))
                .cloned()
                .collect(),
            dtmf: false,
        }
    }

    /// Whether an encoding name passes this policy.
    pub fn permits(&self, name: &str) -> bool {
        let te = name.eq_ignore_ascii_case("telephone-event");
        if te && !self.dtmf && !self.allow.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return false;
        }
        if self.allow.is_empty() {
            return true;
        }
        if te && self.dtmf {
            return true;
        }
        self.allow.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// Encodings that do not carry the call's audio by themselves.
pub fn is_auxiliary(name: &str) -> bool {
    ["telephone-event", "CN", "red", "ulpfec", "rtx", "flexfec"]
        .iter()
        .any(|a| a.eq_ignore_ascii_case(name))
}

fn is_audio_rtp(m: &MediaSection) -> bool {
    m.media_type().eq_ignore_ascii_case("audio") && m.is_rtp() && m.port() != 0
}

fn has_real_codec(m: &MediaSection) -> bool {
    m.formats().iter().any(|f| {
        f.parse::<u8>()
            .ok()
            .and_then(|pt| m.rtpmap(pt))
            .map(|r| !is_auxiliary(&r.name))
            // an unknown dynamic PT without rtpmap: count it as a codec
            .unwrap_or(true)
    })
}

/// Error of a codec filter: no audio codec left (→ 488).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no acceptable audio codec")]
pub struct NoCodec;

/// Filter an offer in place by `policy`. Returns the kept format list of
/// every media section (empty for untouched / disabled sections), which
/// [`filter_answer`] uses to keep the answer consistent.
pub fn filter_offer(sdp: &mut Sdp, policy: &CodecPolicy) -> Result<Vec<Vec<String>>, NoCodec> {
    let mut kept = Vec::new();
    let mut audio_sections = 0;
    let mut audio_ok = 0;
    for m in sdp.media_mut() {
        if !is_audio_rtp(m) {
            kept.push(m.formats());
            continue;
        }
        audio_sections += 1;
        let mut keep: Vec<String> = m
            .formats()
            .into_iter()
            .filter(|f| {
                f.parse::<u8>()
                    .ok()
                    .and_then(|pt| m.rtpmap(pt))
                    .map(|r| policy.permits(&r.name))
                    .unwrap_or(policy.allow.is_empty())
            })
            .collect();
        if !policy.allow.is_empty() {
            // Stable sort by position in the allow list (unlisted last).
            let rank = |f: &String| {
                let name = f
                    .parse::<u8>()
                    .ok()
                    .and_then(|pt| m.rtpmap(pt))
                    .map(|r| r.name);
                name.and_then(|n| policy.allow.iter().position(|a| a.eq_ignore_ascii_case(&n)))
                    .unwrap_or(usize::MAX)
            };
            keep.sort_by_key(rank);
        }
        let mut probe = m.clone();
        probe.retain_formats(&keep);
        if keep.is_empty() || !has_real_codec(&probe) {
            // Disable this stream (RFC 3264 §6: port 0, formats kept).
            m.set_port(0);
            kept.push(Vec::new());
        } else {
            *m = probe;
            audio_ok += 1;
            kept.push(keep);
        }
    }
    if audio_sections > 0 && audio_ok == 0 {
        return Err(NoCodec);
    }
    Ok(kept)
}

/// Filter an answer in place: drop formats that were not in the (filtered)
/// offer or are not permitted. `offered` is what [`filter_offer`] returned.
pub fn filter_answer(
    sdp: &mut Sdp,
    offered: &[Vec<String>],
    policy: &CodecPolicy,
) -> Result<(), NoCodec> {
    let mut audio_sections = 0;
    let mut audio_ok = 0;
    for (i, m) in sdp.media_mut().iter_mut().enumerate() {
        if !is_audio_rtp(m) {
            continue;
        }
        audio_sections += 1;
        let allowed = offered.get(i).cloned().unwrap_or_default();
        let keep: Vec<String> = m
            .formats()
            .into_iter()
            .filter(|f| allowed.contains(f))
            .filter(|f| {
                f.parse::<u8>()
                    .ok()
                    .and_then(|pt| m.rtpmap(pt))
                    .map(|r| policy.permits(&r.name))
                    .unwrap_or(policy.allow.is_empty())
            })
            .collect();
        let mut probe = m.clone();
        probe.retain_formats(&keep);
        if keep.is_empty() || !has_real_codec(&probe) {
            m.set_port(0);
        } else {
            *m = probe;
            audio_ok += 1;
        }
    }
    if audio_sections > 0 && audio_ok == 0 {
        return Err(NoCodec);
    }
    Ok(())
}
