//! TLS certificate files for P2P nodes under test (feature `p2p`): self-signed, expired, or
//! issued by a test network CA, written as PEM files next to their keys.

use std::path::Path;

use aegis_p2p::TlsFiles;

/// The key type of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ecdsa,
    Ed25519,
}

/// Writes a self-signed certificate for `name` (and `localhost`) and its key into `dir`
/// as `<name>.crt` and `<name>.key`.
pub fn self_signed(dir: &Path, name: &str, kind: KeyKind) -> TlsFiles {
    let key = match kind {
        KeyKind::Ecdsa => rcgen::KeyPair::generate(),
        KeyKind::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519),
    }
    .expect("generate a certificate key");
    let params = rcgen::CertificateParams::new(vec![name.to_owned(), "localhost".into()])
        .expect("certificate parameters");
    let cert = params.self_signed(&key).expect("self-sign a certificate");
    write_pair(dir, name, &cert.pem(), &key.serialize_pem())
}

/// Writes a self-signed certificate that was valid only in 2020.
pub fn expired(dir: &Path, name: &str) -> TlsFiles {
    let key = rcgen::KeyPair::generate().expect("generate a certificate key");
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).expect("certificate parameters");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).expect("self-sign a certificate");
    write_pair(dir, name, &cert.pem(), &key.serialize_pem())
}

/// Writes PEM `cert` and `key` into `dir` as `<name>.crt` and `<name>.key`.
pub fn write_pair(dir: &Path, name: &str, cert: &str, key: &str) -> TlsFiles {
    std::fs::create_dir_all(dir).expect("create the certificate directory");
    let cert_file = dir.join(format!("{name}.crt"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&cert_file, cert).expect("write the certificate");
    std::fs::write(&key_file, key).expect("write the certificate key");
    TlsFiles {
        cert_file,
        key_file,
        ca_file: None,
    }
}

/// A network CA and the node certificates it issues.
pub struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    /// The CA certificate, PEM.
    pub pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("pem", &self.pem)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A self-signed CA whose common name is `name`.
    pub fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("generate the CA key");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Ca {
            params,
            key,
            pem: cert.pem(),
        }
    }

    /// Issues a certificate for `name` and writes it with its key (as [`write_pair`] does)
    /// and this CA's certificate as `<name>-ca.pem`, the files' `ca_file`.
    pub fn issue(&self, dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().expect("generate a certificate key");
        let params =
            rcgen::CertificateParams::new(vec![name.to_owned()]).expect("certificate parameters");
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .expect("issue a certificate");
        let mut files = write_pair(dir, name, &cert.pem(), &key.serialize_pem());
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, &self.pem).expect("write the CA certificate");
        files.ca_file = Some(ca_file);
        files
    }
}
