//! `api:`: the client API and `/health` listener.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use aegis_types::encoding::MAX_ENCODED_BYTES;

use crate::file::{ApiFile, ApiTlsFile};

use super::checker::Checker;
use super::mempool::MEMPOOL_MAX_TRANSACTION_BYTES_RANGE;

/// `api.max_request_size`: a request is read whole into memory, and nothing larger than the
/// canonical encoding's limit (64 MiB) could be decoded from it anyway.
pub const API_MAX_REQUEST_SIZE_RANGE: RangeInclusive<u64> = 1..=MAX_ENCODED_BYTES as u64;

// A client submits one transaction per request, so the largest request allowed must hold the
// largest transaction the mempool may be set to admit.
const _: () =
    assert!(*MEMPOOL_MAX_TRANSACTION_BYTES_RANGE.end() <= *API_MAX_REQUEST_SIZE_RANGE.end());

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
        max_request_size_bytes: ck.size(
            "api.max_request_size",
            max_request_size,
            API_MAX_REQUEST_SIZE_RANGE,
        ),
        tls,
    }
}
