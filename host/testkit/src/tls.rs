//! A blocking TLS client for SIP over TLS tests (SIPp as packaged by Debian
//! is built without OpenSSL). It trusts exactly one certificate: the
//! switch's self-signed test certificate, compared byte for byte, with the
//! handshake signatures still verified.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// A connected TLS stream.
pub struct TlsStream {
    inner: StreamOwned<ClientConnection, TcpStream>,
    /// The underlying TCP socket (for the local address).
    pub sock: TcpStream,
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl crate::sip::TimedRead for TlsStream {
    fn set_timeout(&mut self, t: Duration) -> std::io::Result<()> {
        self.sock.set_read_timeout(Some(t))
    }
}

#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "server certificate is not the pinned one".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Connect from `local_ip` to `server` and complete the TLS handshake,
/// trusting only `cert_pem`. Panics with the reason on failure.
pub fn connect(local_ip: IpAddr, server: SocketAddr, cert_pem: &str) -> TlsStream {
    let cert = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .next()
        .expect("a certificate in the PEM")
        .expect("valid PEM certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algs = provider.signature_verification_algorithms;
    let config = ClientConfig::builder_with_provider(provider.clone() as Arc<CryptoProvider>)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { cert, algs }))
        .with_no_client_auth();
    let sock = crate::net::tcp_connect_from(local_ip, server);
    let name = ServerName::IpAddress(server.ip().into());
    let conn = ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let mut inner = StreamOwned::new(conn, sock.try_clone().expect("clone socket"));
    sock.set_read_timeout(Some(Duration::from_secs(10))).ok();
    while inner.conn.is_handshaking() {
        inner
            .conn
            .complete_io(&mut inner.sock)
            .unwrap_or_else(|e| panic!("TLS handshake with {server} failed: {e}"));
    }
    TlsStream { inner, sock }
}
