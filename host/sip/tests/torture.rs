//! Table-driven torture tests modelled on RFC 4475's categories (own cases,
//! not copied): valid-but-odd messages that must parse with the right
//! values, and invalid ones that must be rejected with a reason.

use bytes::Bytes;
use strowger_sip::digest::Challenge;
use strowger_sip::{
    Contact, Method, ParseErrorKind, ParseOptions, Scheme, Transport, parse, parse_with,
};

/// `{CL}` is replaced by the byte length of everything after the first
/// empty line; `\n` line ends are turned into CRLF unless the text starts
/// with `#LF#`.
fn msg(text: &str) -> Bytes {
    let (lf_only, text) = match text.strip_prefix("#LF#") {
        Some(t) => (true, t),
        None => (false, text),
    };
    let text = if lf_only {
        text.to_string()
    } else {
        text.replace("\r\n", "\n").replace('\n', "\r\n")
    };
    let sep = if lf_only { "\n\n" } else { "\r\n\r\n" };
    let body_len = text.find(sep).map_or(0, |i| text.len() - i - sep.len());
    Bytes::from(text.replace("{CL}", &body_len.to_string()))
}

type Check = fn(&strowger_sip::Message);

struct Valid {
    name: &'static str,
    text: &'static str,
    check: Check,
}

fn valid_cases() -> Vec<Valid> {
    vec![
        Valid {
            name: "odd whitespace, folding, compact forms (wsinv-like)",
            text: "INVITE sip:vivekg@chair.example.com;unknownparam SIP/2.0\n\
TO :\n sip:vivekg@chair.example.com ;   tag    = 1918181833n\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\n  ;\n  tag = 98asjd8\n\
MaX-fOrWaRdS: 0068\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\n\
Content-Length   : {CL}\n\
cseq: 0009\n  INVITE\n\
Via  : SIP  /   2.0\n /UDP\n    192.0.2.2;rport;branch=390skdjuw\n\
s :\n\
NewFangledHeader:   newfangled value\n continued newfangled value\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\n\
Content-Type: application/sdp\n\
Route:\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n  branch  =   z9hG4bK9ikj8  ,\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n z9hG4bK30239\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\n      newvalue ;\n  secondparam ; q = 0.33\n\
\n\
v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.3\ns=-\nc=IN IP4 192.0.2.4\nt=0 0\nm=audio 49217 RTP/AVP 0 12\n",
            check: |m| {
                assert_eq!(m.method(), Some(&Method::Invite));
                assert_eq!(m.to().tag(), Some("1918181833n"));
                assert_eq!(m.from().tag(), Some("98asjd8"));
                assert_eq!(
                    m.from().display_name_unquoted().unwrap(),
                    "J Rosenberg \\\""
                );
                assert_eq!(m.max_forwards(), Some(68));
                assert_eq!(m.cseq().seq, 9);
                let vias: Vec<_> = m.vias().collect();
                assert_eq!(vias.len(), 3);
                assert_eq!(vias[0].host, "192.0.2.2");
                assert_eq!(vias[0].rport(), Some(None));
                assert_eq!(vias[1].transport(), Some(Transport::Tcp));
                assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
                assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
                assert_eq!(m.header("Subject"), Some(""));
                assert_eq!(
                    m.header("newfangledheader"),
                    Some("newfangled value   continued newfangled value")
                );
                assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
                let c = m.contacts().unwrap();
                assert_eq!(c.len(), 1);
                assert_eq!(c[0].q(), Some(0.33));
                assert_eq!(
                    c[0].addr().unwrap().params.get("newparam"),
                    Some("newvalue")
                );
                assert!(c[0].addr().unwrap().params.has("secondparam"));
                assert!(m.routes().unwrap()[0].uri.has_lr());
                assert!(m.body().starts_with(b"v=0"));
                assert_eq!(
                    m.request_uri().unwrap().params.get("unknownparam"),
                    Some("")
                );
            },
        },
        Valid {
            name: "extension method with odd token chars and an odd URI (intmeth-like)",
            text: "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\n\
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n\
To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\n\
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\\\"q\\\\\\\"\";tag=_token~1'+`*%!-.\n\
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n\
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n\
Max-Forwards: 255\n\
extensionHeader-!.%*+_`'~:\u{EF}\u{BB}\u{BF}\u{5927}\u{5816}\u{9928}\n\
Content-Length: 0\n\n",
            check: |m| {
                assert_eq!(
                    m.method().unwrap().as_str(),
                    "!interesting-Method0123456789_*+`.%indeed'~"
                );
                let u = m.request_uri().unwrap();
                assert_eq!(u.host, "example.com");
                assert_eq!(
                    u.user,
                    Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
                );
                assert_eq!(
                    u.password,
                    Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
                );
                assert_eq!(m.from().tag(), Some("_token~1'+`*%!-."));
                assert_eq!(
                    m.from().display_name,
                    Some("token1~` token2'+_ token3*%!.-")
                );
                assert_eq!(m.call_id(), "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
                assert_eq!(m.max_forwards(), Some(255));
                assert!(m.header("extensionHeader-!.%*+_`'~").is_some());
            },
        },
        Valid {
            name: "escaped characters in URIs (esc01-like)",
            text: "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n\
To: sip:%75se%72@example.com\n\
From: <sip:I%20have%20spaces@example.net>;tag=938\n\
Max-Forwards: 87\n\
i: esc01.239409asdfakjkn23onasd0-3234\n\
CSeq: 234234 INVITE\n\
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\n\
C: application/sdp\n\
Contact:\n  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\n\
Content-Length: {CL}\n\nv=0\n",
            check: |m| {
                let u = m.request_uri().unwrap();
                assert_eq!(
                    m.request_uri_str(),
                    Some("sip:sips%3Auser%40example.com@example.net")
                );
                assert_eq!(u.user, Some("sips%3Auser%40example.com"));
                assert_eq!(u.user_decoded().unwrap(), "sips:user@example.com");
                assert_eq!(u.host, "example.net");
                assert_eq!(m.to().uri.user_decoded().unwrap(), "user");
                assert_eq!(m.from().uri.user_decoded().unwrap(), "I have spaces");
                let c = m.contacts().unwrap();
                let a = c[0].addr().unwrap();
                assert_eq!(a.uri.user_decoded().unwrap(), "caller");
                assert!(a.uri.params.has("%6C%72"));
                assert_eq!(m.content_type(), Some("application/sdp"));
                assert_eq!(m.call_id(), "esc01.239409asdfakjkn23onasd0-3234");
            },
        },
        Valid {
            name: "escaped nulls in URIs (escnull-like)",
            text: "REGISTER sip:example.com SIP/2.0\n\
To: sip:null-%00-null@example.com\n\
From: sip:null-%00-null@example.com;tag=839923423\n\
Max-Forwards: 70\n\
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\n\
CSeq: 14398234 REGISTER\n\
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n\
Contact: <sip:%00@host5.example.com>\n\
Contact: <sip:%00%00@host5.example.com>\n\
L:0\n\n",
            check: |m| {
                assert_eq!(m.to().uri.user_decoded().unwrap(), "null-\0-null");
                assert_eq!(m.from().tag(), Some("839923423"));
                let c = m.contacts().unwrap();
                assert_eq!(c.len(), 2);
                assert_eq!(c[1].addr().unwrap().uri.user_decoded().unwrap(), "\0\0");
            },
        },
        Valid {
            name: "escaped method is a different method (esc02-like)",
            text: "RE%47IST%45R sip:registrar.example.com SIP/2.0\n\
To: \"%Z%45\" <sip:resource@example.com>\n\
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23\n\
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\n\
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209793\n\
CSeq: 29344 RE%47IST%45R\n\
Max-Forwards: 70\n\
Contact: <sip:alias1@host1.example.com>\n\
Content-Length: 0\n\n",
            check: |m| {
                assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
                assert_eq!(m.to().display_name_unquoted().unwrap(), "%Z%45");
            },
        },
        Valid {
            name: "no space between display name and <URI> (lwsdisp-like)",
            text: "OPTIONS sip:user@example.com SIP/2.0\n\
To: sip:user@example.com\n\
From: caller<sip:caller@example.com>;tag=323\n\
Max-Forwards: 70\n\
Call-ID: lwsdisp.1234abcd@funky.example.com\n\
CSeq: 60 OPTIONS\n\
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\n\
l: 0\n\n",
            check: |m| {
                assert_eq!(m.from().display_name, Some("caller"));
                assert_eq!(m.from().uri.user, Some("caller"));
                assert_eq!(m.to().tag(), None);
            },
        },
        Valid {
            name: "two messages in one datagram: the second is ignored (dblreq-like)",
            text: "REGISTER sip:example.com SIP/2.0\n\
To: sip:j.user@example.com\n\
From: sip:j.user@example.com;tag=43251j3j324\n\
Max-Forwards: 8\n\
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\n\
Contact: sip:j.user@host.example.com\n\
CSeq: 8 REGISTER\n\
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\n\
Content-Length: 0\n\n\
INVITE sip:joe@example.com SIP/2.0\n\
t: sip:joe@example.com\n\n",
            check: |m| {
                assert_eq!(m.method(), Some(&Method::Register));
                assert!(m.body().is_empty());
                assert_eq!(
                    m.contacts().unwrap()[0].addr().unwrap().uri.host,
                    "host.example.com"
                );
            },
        },
        Valid {
            name: "semicolon-separated parameters in the user part (semiuri-like)",
            text: "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\n\
To: sip:j_user@example.com\n\
From: sip:caller@example.org;tag=33242\n\
Max-Forwards: 3\n\
Call-ID: semiuri.0ha0isndaksdj\n\
CSeq: 8 OPTIONS\n\
Accept: application/sdp, application/pkcs7-mime,\n multipart/mixed, multipart/signed,\n message/sip, message/sipfrag\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n\
l: 0\n\n",
            check: |m| {
                let u = m.request_uri().unwrap();
                assert_eq!(u.user, Some("user;par=u%40example.net"));
                assert_eq!(u.host, "example.com");
                assert!(u.params.is_empty());
                assert_eq!(m.header_values("Accept").count(), 6);
            },
        },
        Valid {
            name: "assorted transports, unknown transport kept (transports-like)",
            text: "OPTIONS sip:user@example.com SIP/2.0\n\
To: sip:user@example.com\n\
From: <sip:caller@example.com>;tag=323\n\
Max-Forwards: 70\n\
Call-ID: transports.kijh4akdnaqjkwendsasfdj\n\
Accept: application/sdp\n\
CSeq: 60 OPTIONS\n\
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n\
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n\
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n\
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n\
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\n\
l: 0\n\n",
            check: |m| {
                let t: Vec<_> = m.vias().map(|v| (v.transport, v.transport())).collect();
                assert_eq!(
                    t,
                    [
                        ("UDP", Some(Transport::Udp)),
                        ("SCTP", Some(Transport::Sctp)),
                        ("TLS", Some(Transport::Tls)),
                        ("UNKNOWN", None),
                        ("TCP", Some(Transport::Tcp))
                    ]
                );
            },
        },
        Valid {
            name: "multipart body kept as a slice (mpart01-like)",
            text: "MESSAGE sip:kumiko@example.org SIP/2.0\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\n\
Max-Forwards: 70\n\
Route: <sip:127.0.0.1:5080;lr>\n\
Contact: <sip:fluffy@127.0.0.1:5070>\n\
To: <sip:kumiko@example.org>\n\
From: <sip:fluffy@example.com>;tag=2fb0dcc9\n\
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\n\
CSeq: 1 MESSAGE\n\
Content-Transfer-Encoding: binary\n\
Content-Type: multipart/mixed;boundary=7a9cbec02ceef655\n\
Date: Sat, 15 Oct 2005 04:44:56 GMT\n\
User-Agent: SIPimp.org/0.2.5 (curses)\n\
Content-Length: {CL}\n\n\
--7a9cbec02ceef655\nContent-Type: text/plain\n\nHello\n--7a9cbec02ceef655--\n",
            check: |m| {
                assert!(m.body().starts_with(b"--7a9cbec02ceef655"));
                assert!(m.body().ends_with(b"--\r\n"));
                assert_eq!(m.header("Date"), Some("Sat, 15 Oct 2005 04:44:56 GMT"));
                assert_eq!(m.user_agent(), Some("SIPimp.org/0.2.5 (curses)"));
                assert_eq!(m.top_via().port, Some(5070));
            },
        },
        Valid {
            name: "response with an unusual UTF-8 reason phrase (unreason-like)",
            text: "SIP/2.0 200 = 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e} - \u{43f}\u{440}\u{43e}\u{441}\u{442}\u{43e}\u{435}\n\
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n\
Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n\
CSeq: 35 INVITE\n\
From: sip:user@example.com;tag=11141343\n\
To: sip:user@example.edu;tag=2229\n\
Content-Length: {CL}\n\
Content-Type: application/sdp\n\
Contact: <sip:user@host198.example.com>\n\n\
v=0\n",
            check: |m| {
                assert_eq!(m.status(), Some(200));
                assert!(m.reason().unwrap().starts_with("= 2**3 * 5**2 "));
                assert_eq!(m.cseq().method, Method::Invite);
                assert_eq!(m.to_tag(), Some("2229"));
            },
        },
        Valid {
            name: "response with an empty reason phrase (noreason-like)",
            text: "SIP/2.0 100 \n\
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n\
Call-ID: noreason.asndj203insdf99223ndf\n\
CSeq: 35 INVITE\n\
From: <sip:user@example.com>;tag=39ansfi3\n\
To: <sip:user@example.edu>;tag=902jndnke3\n\
Content-Length: 0\n\
Contact: <sip:user@host105.example.com>\n\n",
            check: |m| {
                assert_eq!(m.status(), Some(100));
                assert_eq!(m.reason(), Some(""));
            },
        },
        Valid {
            name: "IPv6 literals in R-URI, Via, Contact",
            text: "INVITE sip:user@[2001:db8::10]:5070;transport=tcp SIP/2.0\n\
To: sip:user@[2001:db8::10]\n\
From: sip:user@example.com;tag=81x2\n\
Via: SIP/2.0/TCP [2001:db8::9:1]:5061;received=2001:db8::9:255;branch=z9hG4bKas3-111\n\
Call-ID: SSG9559905523997077@hlau_4100\n\
Max-Forwards: 70\n\
Contact: \"Caller\" <sip:caller@[2001:db8::9:1]:5061;transport=tcp>\n\
CSeq: 8912 INVITE\n\
Content-Length: 0\n\n",
            check: |m| {
                let u = m.request_uri().unwrap();
                assert_eq!(u.host, "[2001:db8::10]");
                assert_eq!(u.host_ip(), Some("2001:db8::10".parse().unwrap()));
                assert_eq!(u.port, Some(5070));
                assert_eq!(u.transport_param(), Some(Transport::Tcp));
                let v = m.top_via();
                assert_eq!(v.host, "[2001:db8::9:1]");
                assert_eq!(v.port, Some(5061));
                assert_eq!(v.received(), Some("2001:db8::9:255"));
                let c = m.contacts().unwrap();
                assert_eq!(c[0].addr().unwrap().uri.host_unbracketed(), "2001:db8::9:1");
            },
        },
        Valid {
            name: "tel: URIs in R-URI and To",
            text: "INVITE tel:+1-201-555-0123;phone-context=example.com SIP/2.0\n\
To: <tel:+12015550123>\n\
From: \"Caller\" <sip:+5511999990000@gw.example.com;user=phone>;tag=99\n\
Via: SIP/2.0/UDP gw.example.com;branch=z9hG4bKtel1\n\
Call-ID: tel-1@gw\n\
CSeq: 1 INVITE\n\
Max-Forwards: 70\n\
Content-Length: 0\n\n",
            check: |m| {
                let u = m.request_uri().unwrap();
                assert_eq!(u.scheme, Scheme::Tel);
                assert_eq!(u.user, Some("+1-201-555-0123"));
                assert_eq!(u.params.get("phone-context"), Some("example.com"));
                assert_eq!(m.to().uri.scheme, Scheme::Tel);
                assert!(m.from().uri.is_user_phone());
            },
        },
        Valid {
            name: "unknown URI scheme in the R-URI is parsed (TU answers 416)",
            text: "OPTIONS nobodyknowsthisscheme:totallyopaquecontent SIP/2.0\n\
To: sip:user@example.com\n\
From: sip:caller@example.net;tag=384\n\
Max-Forwards: 3\n\
Call-ID: unksm.239409asdfakjkn23onasd0-3234\n\
CSeq: 3923239 OPTIONS\n\
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\n\
l: 0\n\n",
            check: |m| {
                let u = m.request_uri().unwrap();
                assert_eq!(u.scheme, Scheme::Other("nobodyknowsthisscheme"));
                assert_eq!(u.to_string(), "nobodyknowsthisscheme:totallyopaquecontent");
            },
        },
        Valid {
            name: "every compact form",
            text: "SUBSCRIBE sip:p@example.com SIP/2.0\n\
v: SIP/2.0/UDP h.example.com;branch=z9hG4bKc1\n\
f: <sip:a@example.com>;tag=1\n\
t: <sip:p@example.com>\n\
i: compact@h\n\
CSeq: 2 SUBSCRIBE\n\
m: <sip:a@h.example.com>\n\
k: 100rel, timer\n\
s: hello\n\
o: presence\n\
u: presence, dialog\n\
x: 1800;refresher=uac\n\
c: text/plain\n\
e: gzip\n\
l: {CL}\n\nhi",
            check: |m| {
                assert_eq!(m.call_id(), "compact@h");
                assert_eq!(m.header("Supported"), Some("100rel, timer"));
                assert!(m.supports("timer"));
                assert_eq!(m.header("Subject"), Some("hello"));
                assert_eq!(m.header("Event"), Some("presence"));
                assert_eq!(
                    m.header_values("Allow-Events").collect::<Vec<_>>(),
                    ["presence", "dialog"]
                );
                assert_eq!(m.header("Session-Expires"), Some("1800;refresher=uac"));
                assert_eq!(m.content_type(), Some("text/plain"));
                assert_eq!(m.header("Content-Encoding"), Some("gzip"));
                assert_eq!(m.body(), b"hi");
                assert_eq!(m.contacts().unwrap().len(), 1);
                // compact lookups work the other way round too
                assert_eq!(m.header("m"), Some("<sip:a@h.example.com>"));
            },
        },
        Valid {
            name: "multiple headers of the same name, lists across lines keep order",
            text: "INVITE sip:b@example.com SIP/2.0\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\n\
Via: SIP/2.0/UDP p3.example.com;branch=z9hG4bK3\n\
Route: <sip:r1.example.com;lr>, <sip:r2.example.com;lr>\n\
Route: <sip:r3.example.com;lr>\n\
Record-Route: <sip:rr1.example.com;lr>\n\
From: <sip:a@example.com>;tag=1\n\
To: <sip:b@example.com>\n\
Call-ID: multi@h\n\
CSeq: 1 INVITE\n\
X-Dup: one\n\
X-Dup: two\n\
Content-Length: 0\n\n",
            check: |m| {
                assert_eq!(m.via_count(), 3);
                let r: Vec<_> = m.routes().unwrap().iter().map(|r| r.uri.host).collect();
                assert_eq!(r, ["r1.example.com", "r2.example.com", "r3.example.com"]);
                assert_eq!(m.record_routes().unwrap().len(), 1);
                assert_eq!(m.headers("x-dup").collect::<Vec<_>>(), ["one", "two"]);
                let names: Vec<_> = m.headers_iter().map(|h| h.name).collect();
                assert_eq!(names[0], "Via");
                assert_eq!(names[names.len() - 2], "X-Dup");
            },
        },
        Valid {
            name: "missing Content-Length on UDP: body is the rest of the datagram",
            text: "MESSAGE sip:b@example.com SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKnocl\n\
From: <sip:a@example.com>;tag=1\n\
To: <sip:b@example.com>\n\
Call-ID: nocl@h\n\
CSeq: 1 MESSAGE\n\
Content-Type: text/plain\n\n\
hello world",
            check: |m| assert_eq!(m.body(), b"hello world"),
        },
        Valid {
            name: "Content-Length shorter than the datagram: extra bytes discarded",
            text: "MESSAGE sip:b@example.com SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKshort\n\
From: <sip:a@example.com>;tag=1\n\
To: <sip:b@example.com>\n\
Call-ID: short@h\n\
CSeq: 1 MESSAGE\n\
Content-Length: 5\n\n\
hello world",
            check: |m| assert_eq!(m.body(), b"hello"),
        },
        Valid {
            name: "bare LF line endings are tolerated",
            text: "#LF#OPTIONS sip:b@example.com SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKlf\n\
From: <sip:a@example.com>;tag=1\n\
To: <sip:b@example.com>\n\
Call-ID: lf@h\n\
CSeq: 1 OPTIONS\n\
Content-Length: 2\n\nok",
            check: |m| {
                assert_eq!(m.call_id(), "lf@h");
                assert_eq!(m.body(), b"ok");
            },
        },
        Valid {
            name: "leading CRLFs before the start line are ignored",
            text: "\n\nOPTIONS sip:b@example.com SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKlead\n\
From: <sip:a@example.com>;tag=1\n\
To: <sip:b@example.com>\n\
Call-ID: lead@h\n\
CSeq: 1 OPTIONS\n\
Content-Length: 0\n\n",
            check: |m| assert_eq!(m.method(), Some(&Method::Options)),
        },
        Valid {
            name: "quoted display names with escapes and commas inside lists",
            text: "REGISTER sip:example.com SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKq\n\
From: \"\\\"Bob\\\" \\\\ jr\" <sip:bob@example.com>;tag=1\n\
To: <sip:bob@example.com>\n\
Call-ID: q@h\n\
CSeq: 1 REGISTER\n\
Contact: \"Smith, Bob\" <sip:bob@h1;a=1,2>;expires=60, <sip:bob@h2>;q=0.5;expires=30\n\
Content-Length: 0\n\n",
            check: |m| {
                assert_eq!(m.from().display_name_unquoted().unwrap(), "\"Bob\" \\ jr");
                let c = m.contacts().unwrap();
                assert_eq!(c.len(), 2);
                assert_eq!(
                    c[0].addr().unwrap().display_name_unquoted().unwrap(),
                    "Smith, Bob"
                );
                assert_eq!(c[0].expires(), Some(60));
                assert_eq!(c[1].q(), Some(0.5));
                assert_eq!(c[1].expires(), Some(30));
            },
        },
        Valid {
            name: "Contact: * with Expires: 0 (remove all bindings)",
            text: "REGISTER sip:example.com SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKstar\n\
From: <sip:bob@example.com>;tag=1\n\
To: <sip:bob@example.com>\n\
Call-ID: star@h\n\
CSeq: 2 REGISTER\n\
Contact: *\n\
Expires: 0\n\
Content-Length: 0\n\n",
            check: |m| {
                assert_eq!(m.contacts().unwrap(), [Contact::Star]);
                assert_eq!(m.expires(), Some(0));
            },
        },
        Valid {
            name: "huge Expires clamps instead of overflowing",
            text: "REGISTER sip:example.com SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKexp\n\
From: <sip:bob@example.com>;tag=1\n\
To: <sip:bob@example.com>\n\
Call-ID: exp@h\n\
CSeq: 2 REGISTER\n\
Contact: <sip:bob@h>;expires=280297596632815\n\
Expires: 1099511627776\n\
Content-Length: 0\n\n",
            check: |m| {
                assert_eq!(m.expires(), Some(u32::MAX));
                assert_eq!(m.contacts().unwrap()[0].expires(), Some(u32::MAX));
            },
        },
        Valid {
            name: "non-UTF-8 (Latin-1) display name is replaced, not fatal",
            text: "OPTIONS sip:b@example.com SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKlatin\n\
From: \"Jos\u{fffd}\" <sip:jose@example.com>;tag=1\n\
To: <sip:b@example.com>\n\
Call-ID: latin@h\n\
CSeq: 1 OPTIONS\n\
Content-Length: 0\n\n",
            check: |m| assert_eq!(m.from().tag(), Some("1")),
        },
        Valid {
            name: "401 with two challenges (SHA-256 and MD5) and auth params",
            text: "SIP/2.0 401 Unauthorized\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKauth\n\
From: <sip:bob@example.com>;tag=1\n\
To: <sip:bob@example.com>;tag=2\n\
Call-ID: auth@h\n\
CSeq: 1 REGISTER\n\
WWW-Authenticate: Digest realm=\"example.com\", nonce=\"abc, def\", algorithm=SHA-256, qop=\"auth\"\n\
WWW-Authenticate: Digest realm=\"example.com\", nonce=\"abc, def\", algorithm=MD5, qop=\"auth\"\n\
Content-Length: 0\n\n",
            check: |m| {
                assert_eq!(m.www_authenticate().count(), 2);
                let best = Challenge::pick_best(m.www_authenticate()).unwrap();
                assert_eq!(best.algorithm, strowger_sip::digest::Algorithm::Sha256);
                assert_eq!(best.nonce, "abc, def");
            },
        },
        Valid {
            name: "long values: 4 KB header, 1 KB tag, 50 Vias",
            text: "", // generated below
            check: |m| {
                assert_eq!(m.via_count(), 50);
                assert_eq!(m.from_tag().unwrap().len(), 1024);
                assert_eq!(m.header("X-Long").unwrap().len(), 4096);
            },
        },
    ]
}

fn long_message() -> Bytes {
    let mut s = String::from("INVITE sip:user@example.com SIP/2.0\r\n");
    for i in 0..50 {
        s.push_str(&format!(
            "Via: SIP/2.0/UDP p{i}.example.com;branch=z9hG4bK{i}\r\n"
        ));
    }
    s.push_str(&format!(
        "From: <sip:a@example.com>;tag={}\r\nTo: <sip:user@example.com>\r\nCall-ID: long@h\r\nCSeq: 1 INVITE\r\nX-Long: {}\r\nContent-Length: 0\r\n\r\n",
        "t".repeat(1024),
        "x".repeat(4096)
    ));
    Bytes::from(s)
}

#[test]
fn valid_messages_parse_with_the_right_values() {
    let cases = valid_cases();
    assert!(cases.len() >= 25);
    for c in &cases {
        let bytes = if c.text.is_empty() {
            long_message()
        } else if c.name.starts_with("non-UTF-8") {
            // put a real Latin-1 byte in place of the marker
            let t = msg(c.text);
            let v: Vec<u8> = String::from_utf8(t.to_vec())
                .unwrap()
                .replace('\u{fffd}', "\u{1}")
                .bytes()
                .map(|b| if b == 1 { 0xe9 } else { b })
                .collect();
            Bytes::from(v)
        } else {
            msg(c.text)
        };
        let m = match parse(bytes.clone()) {
            Ok(m) => m,
            Err(e) => panic!(
                "case '{}' rejected: {e}\n{}",
                c.name,
                String::from_utf8_lossy(&bytes)
            ),
        };
        (c.check)(&m);
    }
}

struct Invalid {
    name: &'static str,
    text: &'static str,
    kind: ParseErrorKind,
    can_respond: bool,
}

const OK_TAIL: &str = "Via: SIP/2.0/UDP h;branch=z9hG4bKbad\n\
From: <sip:a@example.com>;tag=1\n\
To: <sip:b@example.com>\n\
Call-ID: bad@h\n\
CSeq: 1 INVITE\n\
Max-Forwards: 70\n";

fn invalid_cases() -> Vec<Invalid> {
    use ParseErrorKind::*;
    let v = |name, text, kind, can_respond| Invalid {
        name,
        text,
        kind,
        can_respond,
    };
    vec![
        v(
            "whitespace inside the Request-URI",
            "INVITE sip:user@example.com; lr SIP/2.0\n#\n\n",
            StartLine,
            true,
        ),
        v(
            "leading whitespace on the request line",
            " INVITE sip:user@example.com SIP/2.0\n#\n\n",
            StartLine,
            true,
        ),
        v(
            "double spaces around the Request-URI",
            "INVITE  sip:user@example.com  SIP/2.0\n#\n\n",
            StartLine,
            true,
        ),
        v(
            "trailing whitespace after the version",
            "INVITE sip:user@example.com SIP/2.0 \n#\n\n",
            StartLine,
            true,
        ),
        v(
            "Request-URI in <>",
            "INVITE <sip:user@example.com> SIP/2.0\n#\n\n",
            StartLine,
            true,
        ),
        v(
            "unsupported SIP version",
            "INVITE sip:user@example.com SIP/7.0\n#\n\n",
            Version,
            true,
        ),
        v(
            "garbled SIP version",
            "INVITE sip:user@example.com SIP/2.0.1\n#\n\n",
            StartLine,
            true,
        ),
        v(
            "Request-URI with unterminated IPv6",
            "INVITE sip:user@[2001:db8::10 SIP/2.0\n#\n\n",
            StartLine,
            true,
        ),
        v(
            "Request-URI with port out of range",
            "INVITE sip:user@example.com:99999 SIP/2.0\n#\n\n",
            StartLine,
            true,
        ),
        v(
            "Content-Length larger than the body",
            "INVITE sip:user@example.com SIP/2.0\n#Content-Length: 9999\n\nv=0\n",
            ContentLength,
            true,
        ),
        v(
            "negative Content-Length",
            "INVITE sip:user@example.com SIP/2.0\n#Content-Length: -999\n\nv=0\n",
            ContentLength,
            true,
        ),
        v(
            "non-numeric Content-Length",
            "INVITE sip:user@example.com SIP/2.0\n#Content-Length: 1x\n\nv=0\n",
            ContentLength,
            true,
        ),
        v(
            "conflicting Content-Length headers",
            "INVITE sip:user@example.com SIP/2.0\n#Content-Length: 4\nl: 2\n\nv=0\n",
            ContentLength,
            true,
        ),
        v(
            "absurd Content-Length",
            "INVITE sip:user@example.com SIP/2.0\n#Content-Length: 18446744073709551616\n\n",
            ContentLength,
            true,
        ),
        v(
            "Content-Length beyond the size limit",
            "INVITE sip:user@example.com SIP/2.0\n#Content-Length: 99999999\n\n",
            TooLarge,
            true,
        ),
        v(
            "negative CSeq",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: x\nCSeq: -1 INVITE\n\n",
            Header,
            true,
        ),
        v(
            "CSeq out of range",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: x\nCSeq: 36893488147419103232 INVITE\n\n",
            Header,
            true,
        ),
        v(
            "CSeq method differs from the request method",
            "OPTIONS sip:user@example.com SIP/2.0\n#\n\n",
            Header,
            true,
        ),
        v(
            "Max-Forwards above 255",
            "INVITE sip:user@example.com SIP/2.0\n#Max-Forwards: 300\n\n",
            Header,
            true,
        ),
        v(
            "missing Call-ID",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCSeq: 1 INVITE\n\n",
            MissingHeader,
            false,
        ),
        v(
            "missing From",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nTo: <sip:b@c>\nCall-ID: x\nCSeq: 1 INVITE\n\n",
            MissingHeader,
            false,
        ),
        v(
            "missing To",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nCall-ID: x\nCSeq: 1 INVITE\n\n",
            MissingHeader,
            false,
        ),
        v(
            "missing Via",
            "INVITE sip:user@example.com SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: x\nCSeq: 1 INVITE\n\n",
            MissingHeader,
            false,
        ),
        v(
            "missing CSeq",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: x\n\n",
            MissingHeader,
            false,
        ),
        v(
            "duplicate From",
            "INVITE sip:user@example.com SIP/2.0\n#From: <sip:c@d>;tag=2\n\n",
            MissingHeader,
            true,
        ),
        v(
            "unterminated quote in the display name",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: \"Mr. J. User <sip:j.user@example.com>\nCall-ID: x\nCSeq: 1 INVITE\n\n",
            Header,
            true,
        ),
        v(
            "unquoted display name with a comma",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: Bell, Alexander <sip:a.g.bell@example.com>;tag=43\nTo: <sip:b@c>\nCall-ID: x\nCSeq: 1 INVITE\n\n",
            Header,
            true,
        ),
        v(
            "addr-spec with spaces",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: sip:user@example.com :5060\nCall-ID: x\nCSeq: 1 INVITE\n\n",
            Header,
            true,
        ),
        v(
            "status code too large",
            "SIP/2.0 4294967301 better not break the receiver\n#\n\n",
            StartLine,
            false,
        ),
        v(
            "status code below 100",
            "SIP/2.0 99 Low\n#\n\n",
            StartLine,
            false,
        ),
        v(
            "header line without a colon",
            "INVITE sip:user@example.com SIP/2.0\n#NoColonHere\n\n",
            Header,
            false,
        ),
        v(
            "raw NUL in a header name",
            "INVITE sip:user@example.com SIP/2.0\n#X-\u{0}Bad: 1\n\n",
            Header,
            false,
        ),
        v(
            "continuation line before the first header",
            "INVITE sip:user@example.com SIP/2.0\n  folded\n#\n\n",
            Header,
            false,
        ),
        v(
            "headers not terminated by an empty line",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\n",
            Truncated,
            false,
        ),
        v("empty message", "\n\n", StartLine, false),
        v(
            "Via without a host",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: x\nCSeq: 1 INVITE\n\n",
            Header,
            true,
        ),
        v(
            "Via with another protocol version",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/3.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: x\nCSeq: 1 INVITE\n\n",
            Header,
            true,
        ),
        v(
            "Call-ID with whitespace",
            "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: two words\nCSeq: 1 INVITE\n\n",
            Header,
            true,
        ),
        v(
            "ACK with a bad Content-Length gets no response",
            "ACK sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>;tag=2\nCall-ID: x\nCSeq: 1 ACK\nContent-Length: 50\n\n",
            ContentLength,
            false,
        ),
    ]
}

#[test]
fn invalid_messages_are_rejected_with_a_reason() {
    let cases = invalid_cases();
    assert!(cases.len() >= 30);
    for c in &cases {
        let text = c.text.replacen('#', OK_TAIL, 1);
        let bytes = msg(&text);
        let e = match parse(bytes.clone()) {
            Ok(m) => panic!("case '{}' accepted: {m:?}", c.name),
            Err(e) => e,
        };
        assert_eq!(e.kind(), c.kind, "case '{}': {e}", c.name);
        assert!(!e.reason().is_empty());
        assert_eq!(e.can_respond(), c.can_respond, "case '{}': {e}", c.name);
        if let Some(resp) = e.bad_request_response(Some("srvtag")) {
            // The error response is itself well-formed enough to send.
            let s = String::from_utf8(resp.to_vec()).unwrap();
            assert!(s.starts_with(&format!("SIP/2.0 {} ", e.status())), "{s}");
            assert!(s.contains("Warning: 399 strowger \""), "{s}");
            assert!(s.ends_with("Content-Length: 0\r\n\r\n"));
            if !c.name.contains("CSeq")
                && !c.name.contains("To")
                && !c.name.contains("addr-spec")
                && !c.name.contains("quote")
                && !c.name.contains("Call-ID")
                && !c.name.contains("Via")
            {
                let r = parse(resp)
                    .unwrap_or_else(|err| panic!("case '{}': 400 unparsable: {err}\n{s}", c.name));
                assert_eq!(r.status(), Some(e.status()));
                assert_eq!(r.to_tag(), Some("srvtag"));
                assert_eq!(r.call_id(), "bad@h");
            }
        }
    }
}

#[test]
fn version_error_answers_505() {
    let text = "INVITE sip:user@example.com SIP/7.0\n#\n\n".replacen('#', OK_TAIL, 1);
    let e = parse(msg(&text)).unwrap_err();
    assert_eq!(e.status(), 505);
    assert!(e.can_respond());
    let r = parse(e.bad_request_response(None).unwrap()).unwrap();
    assert_eq!(r.status(), Some(505));
    assert_eq!(r.reason(), Some("Version Not Supported"));
}

#[test]
fn stream_mode_requires_exact_content_length() {
    let opts = ParseOptions {
        stream: true,
        ..ParseOptions::default()
    };
    let good = msg(
        &"OPTIONS sip:a@b SIP/2.0\n#Content-Length: 2\n\nok".replacen(
            '#',
            &OK_TAIL.replace("INVITE", "OPTIONS"),
            1,
        ),
    );
    assert!(parse_with(good, &opts).is_ok());
    let extra = msg(
        &"OPTIONS sip:a@b SIP/2.0\n#Content-Length: 1\n\nok".replacen(
            '#',
            &OK_TAIL.replace("INVITE", "OPTIONS"),
            1,
        ),
    );
    assert_eq!(
        parse_with(extra, &opts).unwrap_err().kind(),
        ParseErrorKind::ContentLength
    );
    let small = ParseOptions {
        max_size: 100,
        stream: false,
    };
    let big = msg(&"OPTIONS sip:a@b SIP/2.0\n#\n\n".replacen(
        '#',
        &OK_TAIL.replace("INVITE", "OPTIONS"),
        1,
    ));
    assert_eq!(
        parse_with(big, &small).unwrap_err().kind(),
        ParseErrorKind::TooLarge
    );
}

#[test]
fn flag_tag_parameter_does_not_crash_tag_accessors() {
    // Found by the mutation test: `;tag` without a value.
    let text = "BYE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKft\nFrom: <sip:a@example.com>;tag\nTo: <sip:b@example.com>;tag=\nCall-ID: ft@h\nCSeq: 2 BYE\nContent-Length: 0\n\n";
    let m = parse(msg(text)).unwrap();
    assert_eq!(m.from_tag(), Some(""));
    assert_eq!(m.to_tag(), Some(""));
}

/// Real-world shaped messages for the fuzz seed corpus (a phone's REGISTER
/// with credentials, an INVITE with SDP, and the responses around them).
const REAL: &[(&str, &str)] = &[
    (
        "register_auth",
        "REGISTER sip:strowger.local SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;rport;branch=z9hG4bK-524287-1---3c1a\n\
Max-Forwards: 70\n\
Contact: <sip:1001@192.0.2.20:5062;rinstance=8a2f;transport=UDP>;expires=3600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"\n\
To: <sip:1001@strowger.local>\n\
From: <sip:1001@strowger.local>;tag=5a1c7f02\n\
Call-ID: ZmQ2YjM1NzBhYjM0@192.0.2.20\n\
CSeq: 2 REGISTER\n\
Expires: 3600\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\n\
Supported: replaces, outbound, path\n\
User-Agent: Zoiper rv2.10.20.1\n\
Authorization: Digest username=\"1001\",realm=\"strowger.local\",nonce=\"0000000065f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6\",uri=\"sip:strowger.local\",response=\"6629fae49393a05397450978507c4ef1\",cnonce=\"0a4f113b\",nc=00000001,qop=auth,algorithm=MD5\n\
Content-Length: 0\n\n",
    ),
    (
        "invite_sdp",
        "INVITE sip:1002@strowger.local SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;rport;branch=z9hG4bK-524287-1---77aa\n\
Max-Forwards: 70\n\
Contact: <sip:1001@192.0.2.20:5062;transport=UDP>\n\
To: <sip:1002@strowger.local>\n\
From: \"Alice\" <sip:1001@strowger.local>;tag=9fe3a1\n\
Call-ID: inv-1@192.0.2.20\n\
CSeq: 1 INVITE\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\n\
Content-Type: application/sdp\n\
Supported: replaces, timer\n\
Session-Expires: 1800;refresher=uac\n\
Route: <sip:proxy.example.com;lr>\n\
Content-Length: {CL}\n\n\
v=0\no=- 1 2 IN IP4 192.0.2.20\ns=-\nc=IN IP4 192.0.2.20\nt=0 0\nm=audio 40000 RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=sendrecv\n",
    ),
    (
        "resp_401",
        "SIP/2.0 401 Unauthorized\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;rport=5062;received=192.0.2.20;branch=z9hG4bK-524287-1---3c1a\n\
To: <sip:1001@strowger.local>;tag=srv1\n\
From: <sip:1001@strowger.local>;tag=5a1c7f02\n\
Call-ID: ZmQ2YjM1NzBhYjM0@192.0.2.20\n\
CSeq: 1 REGISTER\n\
WWW-Authenticate: Digest realm=\"strowger.local\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\"\n\
WWW-Authenticate: Digest realm=\"strowger.local\", nonce=\"abc\", algorithm=MD5, qop=\"auth\", stale=true\n\
Content-Length: 0\n\n",
    ),
    (
        "resp_180",
        "SIP/2.0 180 Ringing\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;rport=5062;branch=z9hG4bK-524287-1---77aa\n\
To: <sip:1002@strowger.local>;tag=callee1\n\
From: \"Alice\" <sip:1001@strowger.local>;tag=9fe3a1\n\
Call-ID: inv-1@192.0.2.20\n\
CSeq: 1 INVITE\n\
Contact: <sip:1002@192.0.2.30:5060>\n\
Record-Route: <sip:192.0.2.1;lr>\n\
Content-Length: 0\n\n",
    ),
    (
        "resp_200_sdp",
        "SIP/2.0 200 OK\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;rport=5062;branch=z9hG4bK-524287-1---77aa\n\
To: <sip:1002@strowger.local>;tag=callee1\n\
From: \"Alice\" <sip:1001@strowger.local>;tag=9fe3a1\n\
Call-ID: inv-1@192.0.2.20\n\
CSeq: 1 INVITE\n\
Contact: <sip:1002@192.0.2.30:5060>\n\
Content-Type: application/sdp\n\
Content-Length: {CL}\n\n\
v=0\no=- 3 4 IN IP4 192.0.2.30\ns=-\nc=IN IP4 192.0.2.30\nt=0 0\nm=audio 50000 RTP/AVP 0\n",
    ),
    (
        "ack_2xx",
        "ACK sip:1002@192.0.2.30:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;rport;branch=z9hG4bK-524287-1---88bb\n\
Max-Forwards: 70\n\
To: <sip:1002@strowger.local>;tag=callee1\n\
From: \"Alice\" <sip:1001@strowger.local>;tag=9fe3a1\n\
Call-ID: inv-1@192.0.2.20\n\
CSeq: 1 ACK\n\
Content-Length: 0\n\n",
    ),
    (
        "bye_tel",
        "BYE tel:+15551234;phone-context=example.com SIP/2.0\n\
v: SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKbye1\n\
t: <sip:1002@strowger.local>;tag=callee1\n\
f: <sip:1001@strowger.local>;tag=9fe3a1\n\
i: inv-1@192.0.2.20\n\
CSeq: 2 BYE\n\
l: 0\n\n",
    ),
    (
        "cancel",
        "CANCEL sip:1002@strowger.local SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;rport;branch=z9hG4bK-524287-1---77aa\n\
Max-Forwards: 70\n\
To: <sip:1002@strowger.local>\n\
From: \"Alice\" <sip:1001@strowger.local>;tag=9fe3a1\n\
Call-ID: inv-1@192.0.2.20\n\
CSeq: 1 CANCEL\n\
Content-Length: 0\n\n",
    ),
];

/// Writes the seed corpus of `host/sip/fuzz` (run by hand when the cases
/// change: `STROWGER_FUZZ_CORPUS=host/sip/fuzz/corpus cargo test -p
/// strowger-sip --test torture -- --ignored write_fuzz_seed_corpus`).
#[test]
#[ignore = "writes the fuzz seed corpus; run by hand"]
fn write_fuzz_seed_corpus() {
    let root = std::path::PathBuf::from(
        std::env::var("STROWGER_FUZZ_CORPUS").expect("set STROWGER_FUZZ_CORPUS"),
    );
    let parse_dir = root.join("parse");
    let tx_dir = root.join("transaction");
    std::fs::create_dir_all(&parse_dir).unwrap();
    std::fs::create_dir_all(&tx_dir).unwrap();
    let slug = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(48)
            .collect()
    };
    let mut n = 0;
    let mut write = |dir: &std::path::Path, name: String, data: &[u8]| {
        n += 1;
        std::fs::write(dir.join(name), data).unwrap();
    };
    for c in valid_cases() {
        if c.text.is_empty() {
            continue; // the 60 kB generated one: too big for a seed
        }
        write(&parse_dir, format!("valid_{}", slug(c.name)), &msg(c.text));
    }
    for c in invalid_cases() {
        let text = c.text.replacen('#', OK_TAIL, 1);
        write(&parse_dir, format!("invalid_{}", slug(c.name)), &msg(&text));
    }
    for (name, text) in REAL {
        write(&parse_dir, format!("real_{name}"), &msg(text));
    }
    // Two messages back to back (stream framing) and keep-alives.
    let mut two = msg(REAL[5].1).to_vec();
    two.extend_from_slice(b"\r\n\r\n");
    two.extend_from_slice(&msg(REAL[6].1));
    write(&parse_dir, "stream_two_messages".into(), &two);

    // Transaction programs (format: see fuzz_targets/transaction.rs).
    let raw_in = |t: u8, p: u8, text: &str| -> Vec<u8> {
        let mut v = vec![0u8, t, p];
        v.extend_from_slice(&msg(text));
        v.push(0);
        v
    };
    let invite = REAL[1].1;
    let ack = REAL[5].1;
    let cancel = REAL[7].1;
    let register = REAL[0].1;
    let programs: Vec<(&str, Vec<u8>)> = vec![
        // UAS: INVITE, 180, 200, retransmission, ACK, time passes.
        ("uas_invite_200_ack", {
            let mut v = vec![0u8];
            v.extend(raw_in(0, 1, invite));
            v.extend([5, 0, 1, 5, 0, 3]);
            v.extend(raw_in(0, 1, invite));
            v.extend([6, 0x01, 0xf4]);
            v.extend(raw_in(0, 1, ack));
            v.extend([6, 0xff, 0xff]);
            v
        }),
        // UAS: INVITE, CANCEL, 487 to the INVITE, 200 to the CANCEL.
        ("uas_invite_cancel", {
            let mut v = vec![1u8];
            v.extend(raw_in(0, 1, invite));
            v.extend(raw_in(0, 1, cancel));
            v.extend([5, 1, 3, 5, 0, 5]);
            v.extend([6, 0x7f, 0xff, 6, 0xff, 0xff]);
            v
        }),
        // UAS over TCP: REGISTER answered 401 then 200.
        ("uas_register_tcp", {
            let mut v = vec![2u8];
            v.extend(raw_in(1, 2, register));
            v.extend([5, 0, 4, 6, 0x10, 0x00]);
            v
        }),
        // UAC: INVITE sent, 180, CANCEL, 487; timers run.
        (
            "uac_invite_cancel",
            vec![
                0, 3, 0, 1, 1, 0, 0, 2, 0, 1, 7, 0, 2, 1, 3, 2, 0, 5, 6, 0xff, 0xff,
            ],
        ),
        // UAC: OPTIONS over UDP never answered (Timer E/F), INVITE answered 2xx twice.
        (
            "uac_timeouts_2xx",
            vec![
                0, 3, 1, 2, 2, 0, 1, 3, 0, 3, 3, 0, 0, 2, 1, 3, 2, 129, 3, 6, 0x80, 0x00, 6, 0xff,
                0xff,
            ],
        ),
        // Synthesised requests on both sides plus a transport error.
        (
            "mixed_synth",
            vec![
                0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 5, 0, 7, 8, 0, 0, 3, 2, 4, 4, 1, 1, 9,
                6, 0x20, 0x00,
            ],
        ),
    ];
    for (name, p) in programs {
        write(&tx_dir, name.to_string(), &p);
    }
    // The parse seeds double as raw incoming messages for the layer.
    for (name, text) in REAL {
        let mut v = vec![0u8];
        v.extend(raw_in(0, 3, text));
        v.extend([5, 0, 3, 6, 0xff, 0xff]);
        write(&tx_dir, format!("raw_{name}"), &v);
    }
    assert!(n < 200, "{n} seed files: keep the corpus small");
}
