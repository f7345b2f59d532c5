//! TLS on the public listener, and what the client's TLS library tells about it.
//!
//! With `[server.tls]` the public listener speaks HTTPS itself (rustls; HTTP/2 and HTTP/1.1
//! offered over ALPN; the certificate chain and key read from PEM files, again on every reload).
//! Before the handshake the accept loop reads the client's ClientHello off the connection
//! (`hello::read_records`), computes its JA4 fingerprint and hands the same bytes on to rustls
//! (`Rewind`); every request of the connection carries the fingerprint (`TlsClient`).
//! Behind a proxy that terminates TLS, the proxy's header (`tls_fingerprint_header`, read only
//! from trusted proxies) carries it instead.

mod hello;
mod rewind;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

pub(crate) use hello::Ja4;
pub(crate) use rewind::Rewind;

/// `[server.tls]`: the certificate the public listener serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, PEM, leaf first.
    pub certificate: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

/// The TLS client of a request's connection, as a request extension.
#[derive(Debug, Clone)]
pub(crate) struct TlsClient(pub Ja4);

/// The public listener's TLS configuration; a reload swaps in a new certificate while
/// connections keep the one they started with.
#[derive(Clone)]
pub(crate) struct Acceptor(Arc<ArcSwap<rustls::ServerConfig>>);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

impl Acceptor {
    /// An acceptor serving the certificate `settings` name.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or holds no certificate or key rustls accepts.
    pub(crate) fn new(settings: &TlsSettings) -> Result<Acceptor, String> {
        Ok(Acceptor(Arc::new(ArcSwap::from_pointee(server_config(
            settings,
        )?))))
    }

    /// Serves the certificate `settings` name from now on (the files are read again).
    ///
    /// # Errors
    ///
    /// As [`Acceptor::new`]; the certificate served so far stays.
    pub(crate) fn reload(&self, settings: &TlsSettings) -> Result<(), String> {
        self.0.store(Arc::new(server_config(settings)?));
        Ok(())
    }

    /// The TLS handshake on `stream`, after reading its ClientHello: the stream to serve and
    /// the client's fingerprint (none when the hello could not be read as one).
    ///
    /// # Errors
    ///
    /// When the connection fails or the handshake does.
    pub(crate) async fn accept(
        &self,
        mut stream: TcpStream,
    ) -> std::io::Result<(
        tokio_rustls::server::TlsStream<Rewind<TcpStream>>,
        Option<Ja4>,
    )> {
        let records = hello::read_records(&mut stream).await?;
        let ja4 = Ja4::of_records(&records);
        let acceptor = tokio_rustls::TlsAcceptor::from(self.0.load_full());
        let stream = acceptor.accept(Rewind::new(records, stream)).await?;
        Ok((stream, ja4))
    }
}

/// The rustls configuration for `settings`: its certificate, HTTP/2 and HTTP/1.1 over ALPN.
fn server_config(settings: &TlsSettings) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let shown = |path: &Path| path.display().to_string();
    let chain = CertificateDer::pem_file_iter(&settings.certificate)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|error| format!("{}: {error}", shown(&settings.certificate)))?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate",
            shown(&settings.certificate)
        ));
    }
    // The key file's contents never reach an error message: the PEM parser's own errors quote
    // the line or the base64 they stumbled on, so only an I/O error is passed on.
    let key = PrivateKeyDer::from_pem_file(&settings.private_key).map_err(|error| {
        let why = match error {
            rustls::pki_types::pem::Error::Io(error) => error.to_string(),
            _ => "not a well-formed PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned(),
        };
        format!("{}: {why}", shown(&settings.private_key))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| {
            format!(
                "{} and {} do not make a certificate rustls serves: {error}",
                shown(&settings.certificate),
                shown(&settings.private_key)
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
