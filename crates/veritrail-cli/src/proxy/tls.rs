//! TLS on both sides, with rustls (aws-lc-rs), TLS 1.2 and 1.3 only and the provider's
//! modern AEAD suites only.
//!
//! - **The listener** (`--tls-cert`, `--tls-key`): ALPN offers `h2` and `http/1.1`. The
//!   certificate and key are read again on SIGHUP and whenever either file changes (checked
//!   every two seconds): a new pair is used for the next handshakes, connections already open
//!   go on with theirs; a pair that does not load (unreadable, not PEM, key not matching the
//!   certificate) is refused with an error line and the old one kept.
//! - **mTLS** (`--tls-client-ca`): a client certificate issued by one of those CAs is required
//!   at the handshake; its subject is recorded in each event of the connection
//!   (`request.headers["x-client-cert-subject"]`) and sent to the upstream in that header.
//! - **An `https://` upstream**: its certificate is checked against the system's CAs or
//!   `--upstream-ca`, and its name against the upstream's host. `--upstream-insecure` turns
//!   the check off, with a warning at start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::config::{TlsFiles, UpstreamTrust};

/// The header carrying a verified client certificate's subject (mTLS) to the engine, which
/// records it in `request.headers`, and to the upstream. Any spelling of it a client sends is
/// removed first.
pub(crate) const CLIENT_SUBJECT_HEADER: &str = "x-client-cert-subject";

/// The subject of the client certificate a TLS connection was verified with (RFC 4514 form,
/// characters outside printable ASCII escaped as `\xNN`), if it has one.
pub(crate) fn client_subject(conn: &rustls::ServerConnection) -> Option<String> {
    let der = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = cert.subject().to_string();
    Some(
        subject
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c.to_string()
                } else {
                    c.to_string()
                        .bytes()
                        .map(|b| format!("\\x{b:02x}"))
                        .collect()
                }
            })
            .collect(),
    )
}

/// How long a client gets to finish its TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The listener's certificate, swapped in whole on reload.
#[derive(Debug)]
pub(crate) struct Certificate {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// When the files were last seen changed.
    seen: RwLock<Option<(SystemTime, SystemTime)>>,
}

impl Certificate {
    /// Loads the pair (failing start-up if it does not load).
    pub(crate) fn load(files: &TlsFiles) -> Result<Arc<Self>> {
        let key = certified_key(&files.cert, &files.key)?;
        Ok(Arc::new(Certificate {
            files: files.clone(),
            current: RwLock::new(Arc::new(key)),
            seen: RwLock::new(modified(files)),
        }))
    }

    /// Loads the pair again: `Ok` when it is now in force, `Err` (the old pair kept) when it
    /// did not load.
    pub(crate) fn reload(&self) -> Result<()> {
        let seen = modified(&self.files);
        let key = certified_key(&self.files.cert, &self.files.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        *self.seen.write().unwrap_or_else(|e| e.into_inner()) = seen;
        Ok(())
    }

    /// Whether either file changed since the pair in force was loaded.
    pub(crate) fn changed(&self) -> bool {
        let now = modified(&self.files);
        now.is_some() && now != *self.seen.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn modified(files: &TlsFiles) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&files.cert)?, m(&files.key)?))
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let certs = read_certs(cert)?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow!("{} holds no usable private key: {e}", key.display()))?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| anyhow!("{}: the private key cannot be used: {e}", key.display()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        anyhow!(
            "{} does not match the certificate in {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(certified)
}

/// The listener's TLS configuration over `certificate`.
pub(crate) fn server_config(
    certificate: Arc<Certificate>,
    client_ca: Option<&PathBuf>,
) -> Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .context("TLS versions")?;
    let builder = match client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA certificate", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .context("the client CA set")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client configuration for an `https://` upstream.
pub(crate) fn client_config(trust: &UpstreamTrust) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .context("TLS versions")?;
    let config = match trust {
        UpstreamTrust::System => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!(
                    "no system CA certificates were found for the https upstream: give \
                     --upstream-ca"
                );
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTrust::Ca(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA certificate", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// `--upstream-insecure`: any certificate is taken (signatures are still checked, so the
/// handshake is with whoever holds the key of the certificate shown).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Reloads the certificate on SIGHUP (`hup` resolves) or when its files change, until the
/// task is dropped; says so on stderr and in the metrics each time.
pub(crate) async fn keep_reloading(
    certificate: Arc<Certificate>,
    mut hup: tokio::sync::watch::Receiver<u64>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = hup.changed() => if changed.is_err() { return },
            _ = tick.tick() => if !certificate.changed() { continue },
        }
        let result = match certificate.reload() {
            Ok(()) => {
                eprintln!("TLS certificate reloaded");
                "ok"
            }
            Err(e) => {
                eprintln!("TLS certificate reload refused, the old one is kept: {e:#}");
                "refused"
            }
        };
        ::metrics::counter!(super::metrics::TLS_RELOADS, "result" => result).increment(1);
    }
}
