//! Checking the node's TLS files before it starts (`aegis config check` and `aegis run`):
//! each file is a bounded regular file holding PEM, the certificate parses as X.509 and is
//! valid now, the private key is one rustls can use and matches the certificate, and with
//! a CA file the certificate chains to that CA. Every problem is reported with the file it
//! is in and what is wrong, so an operator does not learn of it from a peer's refusal.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore};

use crate::tls::{TlsFiles, provider, validity};

/// Largest certificate, key or CA file read. A full public CA bundle is about 220 KB; a
/// node's files are a few KB.
pub const MAX_TLS_FILE_BYTES: u64 = 1024 * 1024;

/// Which of the configured files a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFileKind {
    /// `security.tls.cert_file`
    Certificate,
    /// `security.tls.key_file`
    Key,
    /// `security.tls.ca_file`
    Ca,
}

/// One problem with the TLS files; `message` names the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsProblem {
    pub file: TlsFileKind,
    pub message: String,
}

/// Reads a TLS file: a regular file of at most [`MAX_TLS_FILE_BYTES`].
pub(crate) fn read_tls_file(path: &Path) -> Result<Vec<u8>, aegis_fs::ReadError> {
    aegis_fs::read_regular_file(path, MAX_TLS_FILE_BYTES)
}

/// Every problem with `files` at time `now`; empty when the node can use them.
pub fn check_tls_files(files: &TlsFiles, now: SystemTime) -> Vec<TlsProblem> {
    let mut problems = Vec::new();
    let mut problem = |file, message: String| problems.push(TlsProblem { file, message });
    let cert_path = files.cert_file.display();
    let key_path = files.key_file.display();
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());

    let chain = match read_tls_file(&files.cert_file) {
        Err(error) => {
            problem(TlsFileKind::Certificate, error.to_string());
            None
        }
        Ok(bytes) => match certificates(&bytes) {
            Err(reason) => {
                problem(TlsFileKind::Certificate, format!("{cert_path}: {reason}"));
                None
            }
            Ok(chain) => Some(chain),
        },
    };
    let mut certificate_ok = false;
    if let Some(end_entity) = chain.as_ref().and_then(|chain| chain.first()) {
        match ParsedCertificate::try_from(end_entity) {
            Err(error) => problem(
                TlsFileKind::Certificate,
                format!("{cert_path}: not a valid X.509 certificate ({error})"),
            ),
            Ok(_) => match validity(end_entity.as_ref()) {
                None => problem(
                    TlsFileKind::Certificate,
                    format!("{cert_path}: the certificate's validity period cannot be read"),
                ),
                Some((not_before, _)) if i128::from(now_secs) < i128::from(not_before) => {
                    problem(
                        TlsFileKind::Certificate,
                        format!(
                            "{cert_path}: the certificate is not valid before {}",
                            format_utc(not_before)
                        ),
                    );
                }
                Some((_, not_after)) if i128::from(now_secs) > i128::from(not_after) => {
                    problem(
                        TlsFileKind::Certificate,
                        format!(
                            "{cert_path}: the certificate expired on {}",
                            format_utc(not_after)
                        ),
                    );
                }
                Some(_) => certificate_ok = true,
            },
        }
    }

    let provider = provider();
    match read_tls_file(&files.key_file) {
        Err(error) => problem(TlsFileKind::Key, error.to_string()),
        Ok(bytes) => match PrivateKeyDer::from_pem_slice(&bytes) {
            Err(pem::Error::NoItemsFound) => problem(
                TlsFileKind::Key,
                format!(
                    "{key_path}: no PEM private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
                ),
            ),
            Err(error) => problem(
                TlsFileKind::Key,
                format!("{key_path}: malformed PEM ({error})"),
            ),
            Ok(key) => match (&chain, certificate_ok) {
                (Some(chain), true) => {
                    if let Err(error) = CertifiedKey::from_der(chain.clone(), key, &provider) {
                        let message = match error {
                            rustls::Error::InconsistentKeys(_) => format!(
                                "{key_path}: the private key does not match the certificate in {cert_path}"
                            ),
                            other => format!("{key_path}: unusable private key ({other})"),
                        };
                        problem(TlsFileKind::Key, message);
                    }
                }
                // Without a usable certificate only the key itself can be checked.
                _ => {
                    if let Err(error) = provider.key_provider.load_private_key(key) {
                        problem(
                            TlsFileKind::Key,
                            format!("{key_path}: unusable private key ({error})"),
                        );
                    }
                }
            },
        },
    }

    if let Some(ca_file) = &files.ca_file {
        let ca_path = ca_file.display();
        let roots = match read_tls_file(ca_file) {
            Err(error) => {
                problem(TlsFileKind::Ca, error.to_string());
                None
            }
            Ok(bytes) => match ca_roots(&bytes) {
                Err(reason) => {
                    problem(TlsFileKind::Ca, format!("{ca_path}: {reason}"));
                    None
                }
                Ok(roots) => Some(roots),
            },
        };
        if let (Some(roots), Some(chain), true) = (roots, &chain, certificate_ok)
            && let Some((end_entity, intermediates)) = chain.split_first()
            && let Ok(parsed) = ParsedCertificate::try_from(end_entity)
        {
            let verified = rustls::client::verify_server_cert_signed_by_trust_anchor(
                &parsed,
                &roots,
                intermediates,
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_secs)),
                provider.signature_verification_algorithms.all,
            );
            if let Err(error) = verified {
                let message = match error {
                    rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer | CertificateError::BadSignature,
                    ) => {
                        format!("{cert_path}: the certificate is not signed by the CA in {ca_path}")
                    }
                    other if other.to_string().contains("CaUsedAsEndEntity") => format!(
                        "{cert_path}: the certificate is a CA certificate (basicConstraints CA:TRUE, \
                         what `openssl req -x509` makes by default), which the network CA in \
                         {ca_path} does not accept as a node's certificate: have that CA issue \
                         one with CA:FALSE, or remove security.tls.ca_file on every node to use \
                         self-signed certificates"
                    ),
                    other => format!(
                        "{cert_path}: the certificate does not chain to the CA in {ca_path} ({other})"
                    ),
                };
                problem(TlsFileKind::Certificate, message);
            }
        }
    }
    problems
}

/// The PEM certificates of a file, end-entity first.
fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("malformed PEM ({error})"))?;
    if chain.is_empty() {
        return Err(
            "no PEM certificate found (expected a -----BEGIN CERTIFICATE----- block)".to_owned(),
        );
    }
    Ok(chain)
}

/// The CA certificates of a file as trust anchors.
fn ca_roots(bytes: &[u8]) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(bytes)? {
        roots
            .add(cert)
            .map_err(|error| format!("not a valid CA certificate ({error})"))?;
    }
    Ok(Arc::new(roots))
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix seconds.
pub fn format_utc(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm, the inverse of `days_from_civil` in [`crate::tls`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn self_signed(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        TlsFiles {
            cert_file: write(dir, &format!("{name}.crt"), &cert.pem()),
            key_file: write(dir, &format!("{name}.key"), &key.serialize_pem()),
            ca_file: None,
        }
    }

    fn messages(files: &TlsFiles) -> Vec<String> {
        check_tls_files(files, SystemTime::now())
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn dates_print_as_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_740_830_400), "2025-03-01 12:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn a_good_pair_passes_and_each_fault_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = self_signed(dir.path(), "node");
        assert!(messages(&good).is_empty(), "{:?}", messages(&good));

        let garbage = write(dir.path(), "garbage.crt", "this is not a certificate\n");
        let files = TlsFiles {
            cert_file: garbage.clone(),
            ..good.clone()
        };
        assert_eq!(
            messages(&files),
            vec![format!(
                "{}: no PEM certificate found (expected a -----BEGIN CERTIFICATE----- block)",
                garbage.display()
            )]
        );

        let other = self_signed(dir.path(), "other");
        let files = TlsFiles {
            key_file: other.key_file.clone(),
            ..good.clone()
        };
        assert_eq!(
            messages(&files),
            vec![format!(
                "{}: the private key does not match the certificate in {}",
                other.key_file.display(),
                good.cert_file.display()
            )]
        );

        let files = TlsFiles {
            key_file: good.cert_file.clone(),
            ..good.clone()
        };
        assert!(messages(&files)[0].contains("no PEM private key found"));

        let zero = dir.path().join("zero.crt");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let files = TlsFiles {
            cert_file: zero.clone(),
            ..good.clone()
        };
        assert_eq!(
            messages(&files),
            vec![format!(
                "cannot read {}: not a regular file (it is a character device)",
                zero.display()
            )]
        );
    }

    #[test]
    fn expired_and_foreign_certificates_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["old".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let expired = TlsFiles {
            cert_file: write(dir.path(), "old.crt", &cert.pem()),
            key_file: write(dir.path(), "old.key", &key.serialize_pem()),
            ca_file: None,
        };
        assert_eq!(
            messages(&expired),
            vec![format!(
                "{}: the certificate expired on 2021-01-01 00:00:00 UTC",
                expired.cert_file.display()
            )]
        );

        // A CA that did not sign the certificate.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut files = self_signed(dir.path(), "node");
        files.ca_file = Some(write(dir.path(), "ca.crt", &ca.pem()));
        assert_eq!(
            messages(&files),
            vec![format!(
                "{}: the certificate is not signed by the CA in {}",
                files.cert_file.display(),
                dir.path().join("ca.crt").display()
            )]
        );
        // Issued by it: fine.
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let node_key = rcgen::KeyPair::generate().unwrap();
        let issued = rcgen::CertificateParams::new(vec!["node".to_owned()])
            .unwrap()
            .signed_by(&node_key, &issuer)
            .unwrap();
        files.cert_file = write(dir.path(), "issued.crt", &issued.pem());
        files.key_file = write(dir.path(), "issued.key", &node_key.serialize_pem());
        assert!(messages(&files).is_empty(), "{:?}", messages(&files));
        // A CA file that holds no certificate.
        files.ca_file = Some(write(dir.path(), "empty-ca.crt", "nothing here\n"));
        assert!(
            messages(&files)[0].ends_with(
                "no PEM certificate found (expected a -----BEGIN CERTIFICATE----- block)"
            )
        );
    }

    /// A self-signed CA certificate (what `openssl req -x509` makes) is fine without a CA
    /// file, and named as a CA certificate with one, even when the CA file holds it.
    #[test]
    fn a_ca_certificate_as_the_node_certificate_passes_only_without_a_network_ca() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["aegis.local".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let mut files = TlsFiles {
            cert_file: write(dir.path(), "node.crt", &cert.pem()),
            key_file: write(dir.path(), "node.key", &key.serialize_pem()),
            ca_file: None,
        };
        assert!(messages(&files).is_empty(), "{:?}", messages(&files));
        files.ca_file = Some(files.cert_file.clone());
        let problems = messages(&files);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("is a CA certificate (basicConstraints CA:TRUE")
                && problems[0].contains("remove security.tls.ca_file"),
            "{problems:?}"
        );
    }
}
