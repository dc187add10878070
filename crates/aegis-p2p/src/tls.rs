//! TLS 1.3 on the ring provider: certificate loading and hot reload, and the peer
//! certificate verifier shared by both directions (ADR 0005).
//!
//! TLS here authenticates the *session* (encryption, a certificate the operator can inspect
//! with `openssl s_client`, optional CA policy); the *validator identity* is proven after
//! the handshake by the Hello, an Ed25519 signature over this session's exporter secret.
//! So the verifier checks what a certificate can honestly promise without a hostname:
//! its validity period, the handshake signature made with its key, and, when
//! `security.tls.ca_file` is set, that it chains to that CA.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

/// The one crypto provider this crate uses: ring (DEPENDENCIES.md).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide default provider, once. Call first thing in `main`.
/// Harmless if a default is already installed. This crate never relies on the default
/// (it passes its provider explicitly), but other TLS users in the process may.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the node's certificate, key and (optional) network CA live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, end-entity first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key_file: PathBuf,
    /// PEM CA bundle. When set, peers' certificates must chain to it.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read TLS file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: no certificate found")]
    NoCertificate { path: PathBuf },
    #[error("TLS key {key} does not fit certificate {cert}: {message}")]
    Key {
        key: PathBuf,
        cert: PathBuf,
        message: String,
    },
    #[error("CA file {path}: {message}")]
    Ca { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// One loaded certificate, key and CA set.
#[derive(Debug)]
struct Material {
    key: Arc<CertifiedKey>,
    roots: Option<Arc<RootCertStore>>,
    /// File sizes and modification times when loaded, to notice changes.
    stamp: Vec<Option<(u64, SystemTime)>>,
}

/// The node's TLS identity, swappable at run time: certificate renewal does not need a
/// restart. Both the server and client configs resolve the certificate through this store
/// on every handshake, and the verifier reads the CA set from it.
pub struct TlsStore {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    material: RwLock<Arc<Material>>,
}

impl fmt::Debug for TlsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStore")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsStore {
    /// Loads the files; fails if any is missing or inconsistent.
    pub fn load(files: TlsFiles) -> Result<Arc<TlsStore>, TlsError> {
        let provider = provider();
        let material = load_material(&files, &provider)?;
        Ok(Arc::new(TlsStore {
            files,
            provider,
            material: RwLock::new(Arc::new(material)),
        }))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reloads the files if they changed since the last load (or if `force`). On error the
    /// previous certificate stays in use. Returns whether a new certificate was installed.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let current = self.current();
        if !force && stamps(&self.files) == current.stamp {
            return Ok(false);
        }
        let material = load_material(&self.files, &self.provider)?;
        *self
            .material
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(material);
        Ok(true)
    }

    fn current(&self) -> Arc<Material> {
        Arc::clone(&self.material.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current end-entity certificate (DER).
    pub fn certificate(&self) -> Option<CertificateDer<'static>> {
        self.current().key.cert.first().cloned()
    }

    /// A TLS 1.3-only server config that requests (but does not require) a client
    /// certificate, so `openssl s_client` can complete a handshake; the connection is then
    /// refused by the P2P layer, which does require it.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(PeerVerifier {
                store: Arc::clone(self),
            }))
            .with_cert_resolver(Arc::new(Resolver {
                store: Arc::clone(self),
            }));
        // Every session runs a full handshake with a fresh certificate check and Hello.
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// A TLS 1.3-only client config presenting the node certificate.
    pub fn client_config(self: &Arc<Self>) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerVerifier {
                store: Arc::clone(self),
            }))
            .with_client_cert_resolver(Arc::new(Resolver {
                store: Arc::clone(self),
            }));
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }
}

/// A certificate, key or CA file: a regular file of at most
/// [`MAX_TLS_FILE_BYTES`](crate::tls_check::MAX_TLS_FILE_BYTES).
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    crate::tls_check::read_tls_file(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        message: error.reason(),
    })
}

fn stamps(files: &TlsFiles) -> Vec<Option<(u64, SystemTime)>> {
    [
        Some(&files.cert_file),
        Some(&files.key_file),
        files.ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| {
        std::fs::metadata(path)
            .ok()
            .and_then(|meta| Some((meta.len(), meta.modified().ok()?)))
    })
    .collect()
}

fn load_material(files: &TlsFiles, provider: &CryptoProvider) -> Result<Material, TlsError> {
    let stamp = stamps(files);
    let cert_pem = read(&files.cert_file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::Read {
            path: files.cert_file.clone(),
            message: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert_file.clone(),
        });
    }
    let key_pem = read(&files.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::Read {
        path: files.key_file.clone(),
        message: error.to_string(),
    })?;
    let key = CertifiedKey::from_der(certs, key, provider).map_err(|error| TlsError::Key {
        key: files.key_file.clone(),
        cert: files.cert_file.clone(),
        message: error.to_string(),
    })?;
    let roots = match &files.ca_file {
        None => None,
        Some(path) => {
            let pem = read(path)?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|error| TlsError::Ca {
                    path: path.clone(),
                    message: error.to_string(),
                })?;
                roots.add(cert).map_err(|error| TlsError::Ca {
                    path: path.clone(),
                    message: error.to_string(),
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError::Ca {
                    path: path.clone(),
                    message: "no CA certificate found".into(),
                });
            }
            Some(Arc::new(roots))
        }
    };
    Ok(Material {
        key: Arc::new(key),
        roots,
        stamp,
    })
}

/// Hands out the current certificate on every handshake, server and client side.
#[derive(Debug)]
struct Resolver {
    store: Arc<TlsStore>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.store.current().key))
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = Arc::clone(&self.store.current().key);
        // rustls picks the scheme later; offering a key the server cannot verify would
        // fail the handshake, so check there is one in common.
        key.key.choose_scheme(sigschemes)?;
        Some(key)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies peer certificates in both directions (see the module docs).
#[derive(Debug)]
struct PeerVerifier {
    store: Arc<TlsStore>,
}

impl PeerVerifier {
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let material = self.store.current();
        match &material.roots {
            Some(roots) => {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    roots,
                    intermediates,
                    now,
                    self.store.provider.signature_verification_algorithms.all,
                )
            }
            None => check_validity(end_entity, now),
        }
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify_chain(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.store.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.store
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Not mandatory at the TLS layer, so a plain `openssl s_client` completes a handshake
    /// and sees the node certificate; the P2P layer refuses a session without one.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify_chain(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(self)
    }
}

/// Checks a certificate's validity period without a trust anchor (self-signed mode).
fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (not_before, not_after) = validity(cert.as_ref()).ok_or(
        rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
    )?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < not_before {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > not_after {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// Seconds until the certificate expires (negative if expired), for logs.
pub fn seconds_until_expiry(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, not_after) = validity(cert.as_ref())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    Some(not_after - i64::try_from(now).ok()?)
}

/// One DER element: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// `(notBefore, notAfter)` of an X.509 certificate, as Unix seconds.
pub(crate) fn validity(der: &[u8]) -> Option<(i64, i64)> {
    const SEQUENCE: u8 = 0x30;
    let (tag, certificate, _) = der_element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = der_element(rest)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        let (_, _, after) = der_element(rest)?;
        rest = after;
    }
    let (tag, validity, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag_before, before, rest) = der_element(validity)?;
    let (tag_after, after, _) = der_element(rest)?;
    Some((der_time(tag_before, before)?, der_time(tag_after, after)?))
}

/// UTCTime (0x17, `YYMMDDHHMMSSZ`) or GeneralizedTime (0x18, `YYYYMMDDHHMMSSZ`).
fn der_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match (tag, text.len()) {
        (0x17, 13) => {
            let yy = digits(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (0x18, 15) => (digits(0..4)?, 4),
        _ => return None,
    };
    if text.last() != Some(&b'Z') {
        return None;
    }
    let month = digits(rest..rest + 2)?;
    let day = digits(rest + 2..rest + 4)?;
    let hour = digits(rest + 4..rest + 6)?;
    let minute = digits(rest + 6..rest + 8)?;
    let second = digits(rest + 8..rest + 10)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(der_time(0x17, b"250301120000Z"), Some(1_740_830_400));
        assert_eq!(der_time(0x18, b"20250301120000Z"), Some(1_740_830_400));
    }

    #[test]
    fn reads_validity_of_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["node".into()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 1, 2);
        params.not_after = rcgen::date_time_ymd(2021, 1, 2);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let (before, after) = validity(cert.der()).expect("validity");
        assert_eq!(before, days_from_civil(2020, 1, 2) * 86_400);
        assert_eq!(after, days_from_civil(2021, 1, 2) * 86_400);
        let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
        assert!(matches!(
            check_validity(cert.der(), now),
            Err(rustls::Error::InvalidCertificate(CertificateError::Expired))
        ));
    }

    proptest! {
        #[test]
        fn garbage_certificates_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validity(&bytes);
        }
    }
}
