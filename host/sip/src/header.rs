//! Header names: canonical forms, compact forms, list-ness.

macro_rules! headers {
    ($( $variant:ident => $canon:literal, $lower:literal $(| $alt:literal)*, list = $list:literal; )*) => {
        /// A header name. Well-known headers are recognised (case-insensitively,
        /// including RFC 3261 compact forms such as `v`, `f`, `i`); every other
        /// name is [`HeaderName::Other`] and compared by its raw text.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = $canon]
                $variant,
            )*
            /// Any header not in the table above.
            Other,
        }

        impl HeaderName {
            /// Recognises a header name (case-insensitive; compact forms accepted).
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                let mut buf = [0u8; 24];
                if name.len() > buf.len() {
                    return HeaderName::Other;
                }
                for (d, s) in buf.iter_mut().zip(name) {
                    *d = s.to_ascii_lowercase();
                }
                match &buf[..name.len()] {
                    $( $lower $(| $alt)* => HeaderName::$variant, )*
                    _ => HeaderName::Other,
                }
            }

            /// Canonical spelling, e.g. `Call-ID`, `CSeq`, `WWW-Authenticate`.
            /// `Other` has no canonical name and returns "".
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// True for headers whose value is a comma-separated list
            /// (RFC 3261 §7.3.1), so that several header lines are equivalent to
            /// one line with comma-separated values.
            pub fn is_list(self) -> bool {
                match self {
                    $( HeaderName::$variant => $list, )*
                    HeaderName::Other => false,
                }
            }
        }
    };
}

headers! {
    Via => "Via", b"via" | b"v", list = true;
    From => "From", b"from" | b"f", list = false;
    To => "To", b"to" | b"t", list = false;
    CallId => "Call-ID", b"call-id" | b"i", list = false;
    CSeq => "CSeq", b"cseq", list = false;
    MaxForwards => "Max-Forwards", b"max-forwards", list = false;
    Contact => "Contact", b"contact" | b"m", list = true;
    ContentLength => "Content-Length", b"content-length" | b"l", list = false;
    ContentType => "Content-Type", b"content-type" | b"c", list = false;
    ContentEncoding => "Content-Encoding", b"content-encoding" | b"e", list = true;
    ContentDisposition => "Content-Disposition", b"content-disposition", list = false;
    ContentLanguage => "Content-Language", b"content-language", list = true;
    Expires => "Expires", b"expires", list = false;
    MinExpires => "Min-Expires", b"min-expires", list = false;
    Route => "Route", b"route", list = true;
    RecordRoute => "Record-Route", b"record-route", list = true;
    Path => "Path", b"path", list = true;
    ServiceRoute => "Service-Route", b"service-route", list = true;
    Authorization => "Authorization", b"authorization", list = false;
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization", list = false;
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate", list = false;
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate", list = false;
    AuthenticationInfo => "Authentication-Info", b"authentication-info", list = false;
    Supported => "Supported", b"supported" | b"k", list = true;
    Require => "Require", b"require", list = true;
    ProxyRequire => "Proxy-Require", b"proxy-require", list = true;
    Unsupported => "Unsupported", b"unsupported", list = true;
    Allow => "Allow", b"allow", list = true;
    AllowEvents => "Allow-Events", b"allow-events" | b"u", list = true;
    Accept => "Accept", b"accept", list = true;
    AcceptEncoding => "Accept-Encoding", b"accept-encoding", list = true;
    AcceptLanguage => "Accept-Language", b"accept-language", list = true;
    Event => "Event", b"event" | b"o", list = false;
    SubscriptionState => "Subscription-State", b"subscription-state", list = false;
    UserAgent => "User-Agent", b"user-agent", list = false;
    Server => "Server", b"server", list = false;
    Subject => "Subject", b"subject" | b"s", list = false;
    ReferTo => "Refer-To", b"refer-to" | b"r", list = false;
    ReferredBy => "Referred-By", b"referred-by" | b"b", list = false;
    Replaces => "Replaces", b"replaces", list = false;
    SessionExpires => "Session-Expires", b"session-expires" | b"x", list = false;
    MinSe => "Min-SE", b"min-se", list = false;
    Identity => "Identity", b"identity" | b"y", list = false;
    AcceptContact => "Accept-Contact", b"accept-contact" | b"a", list = true;
    RejectContact => "Reject-Contact", b"reject-contact" | b"j", list = true;
    RequestDisposition => "Request-Disposition", b"request-disposition" | b"d", list = true;
    PAssertedIdentity => "P-Asserted-Identity", b"p-asserted-identity", list = true;
    PPreferredIdentity => "P-Preferred-Identity", b"p-preferred-identity", list = true;
    Privacy => "Privacy", b"privacy", list = false;
    Diversion => "Diversion", b"diversion", list = true;
    HistoryInfo => "History-Info", b"history-info", list = true;
    Reason => "Reason", b"reason", list = true;
    RAck => "RAck", b"rack", list = false;
    RSeq => "RSeq", b"rseq", list = false;
    Date => "Date", b"date", list = false;
    Timestamp => "Timestamp", b"timestamp", list = false;
    Warning => "Warning", b"warning", list = true;
    RetryAfter => "Retry-After", b"retry-after", list = false;
    CallInfo => "Call-Info", b"call-info", list = true;
    AlertInfo => "Alert-Info", b"alert-info", list = true;
    ErrorInfo => "Error-Info", b"error-info", list = true;
    InReplyTo => "In-Reply-To", b"in-reply-to", list = true;
    Organization => "Organization", b"organization", list = false;
    Priority => "Priority", b"priority", list = false;
    ReplyTo => "Reply-To", b"reply-to", list = false;
    MimeVersion => "MIME-Version", b"mime-version", list = false;
}

impl HeaderName {
    /// The RFC 3261 compact form, if the header has one.
    pub fn compact(self) -> Option<char> {
        Some(match self {
            HeaderName::Via => 'v',
            HeaderName::From => 'f',
            HeaderName::To => 't',
            HeaderName::CallId => 'i',
            HeaderName::Contact => 'm',
            HeaderName::ContentLength => 'l',
            HeaderName::ContentType => 'c',
            HeaderName::ContentEncoding => 'e',
            HeaderName::Supported => 'k',
            HeaderName::Subject => 's',
            HeaderName::Event => 'o',
            HeaderName::AllowEvents => 'u',
            HeaderName::ReferTo => 'r',
            HeaderName::ReferredBy => 'b',
            HeaderName::SessionExpires => 'x',
            HeaderName::Identity => 'y',
            HeaderName::AcceptContact => 'a',
            HeaderName::RejectContact => 'j',
            HeaderName::RequestDisposition => 'd',
            _ => return None,
        })
    }

    /// Recognises a header name given as a string (see [`HeaderName::from_bytes`]).
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(HeaderName::from_str("v"), HeaderName::Via);
        assert_eq!(HeaderName::from_str("VIA"), HeaderName::Via);
        assert_eq!(HeaderName::from_str("call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_str("I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_str("X-Foo"), HeaderName::Other);
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        assert_eq!(HeaderName::Contact.compact(), Some('m'));
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::WwwAuthenticate.is_list());
    }
}
