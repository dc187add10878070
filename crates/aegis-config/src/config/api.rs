//! `api:`: the client API and `/health` listener.

use std::path::PathBuf;

use crate::file::{ApiFile, ApiTlsFile};

use super::checker::Checker;

/// `api:` — the client API and `/health` listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    pub host: String,
    pub port: u16,
    pub max_request_size_bytes: usize,
    /// `Some` when `api.tls.enabled` is true.
    pub tls: Option<TlsFiles>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub(super) fn build_api(ck: &mut Checker<'_, '_>, file: ApiFile) -> ApiConfig {
    let ApiFile {
        host,
        port,
        max_request_size,
        tls,
    } = file;
    let ApiTlsFile {
        enabled,
        cert_file,
        key_file,
    } = tls;
    let tls = if enabled {
        let required = |ck: &mut Checker<'_, '_>, key: &str, value: Option<String>| match value
            .filter(|v| !v.trim().is_empty())
        {
            Some(path) => ck.path(key, &path),
            None => {
                ck.error(key, "required when api.tls.enabled is true");
                PathBuf::new()
            }
        };
        let cert_file = required(ck, "api.tls.cert_file", cert_file);
        let key_file = required(ck, "api.tls.key_file", key_file);
        Some(TlsFiles {
            cert_file,
            key_file,
        })
    } else {
        None
    };
    ApiConfig {
        host: ck.host("api.host", host),
        port: ck.port("api.port", port),
        max_request_size_bytes: ck.size("api.max_request_size", max_request_size),
        tls,
    }
}
