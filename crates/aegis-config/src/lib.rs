//! AEGIS node configuration: the YAML file (`config/production.yaml`) into a validated
//! [`NodeConfig`].
//!
//! This crate owns:
//! - the configuration schema: every section and key, its default, its unit (bare numbers
//!   are seconds, except `p2p.flush_interval` in milliseconds; sizes are bytes or
//!   `"64KB"`-style strings where KB = 1024 bytes) and its range, each maximum a named
//!   constant ([`bounds`]);
//! - `${VAR}` and `${VAR:-default}` substitution in scalar values, quoted or not, and the
//!   `Missing environment variables: A, B` report;
//! - `AEGIS_HOME` resolution and the anchoring of relative paths ([`resolve_home`]);
//! - reading dotenv files into pairs ([`load_dotenv`]); applying them is the CLI's choice;
//! - errors that name the file, line, column and dotted key of every problem, all of them in
//!   one pass ([`ConfigError`], [`ConfigErrors`]);
//! - the cross-check of a configuration against the genesis ([`check_against_genesis`]).
//!
//! It does not open sockets, databases or key files: it only says where they are and how
//! they should be used.
//!
//! # How a file is read
//! 1. `saphyr-parser` events become a small spanned tree (`yaml` module), refusing alias
//!    bombs and deep nesting ([`MAX_YAML_NODES`], [`MAX_YAML_DEPTH`],
//!    [`MAX_CONFIG_FILE_BYTES`]).
//! 2. The tree is decoded into file structs with defaults (`file` module). Environment
//!    variables are substituted in each scalar *after* parsing, so line and column numbers
//!    always refer to the file as written. Unknown keys (with a "did you mean" suggestion),
//!    wrong types and malformed `${...}` are reported; decoding goes on.
//! 3. The file structs are destructured exhaustively into [`NodeConfig`], checking ranges and
//!    cross-key rules (`config` module).
//!
//! Where a number, boolean or duration is expected, a quoted scalar is read the same way as
//! a plain one, so `port: "${P2P_PORT}"` works. A key set to null (`port:` or `port: ~`)
//! keeps its default. Keys are never substituted.
//!
//! serde is not used for stage 2: a serde deserializer stops at the first error, and the
//! operator should see all of them at once.
//!
//! # Error formats
//! - `FILE:LINE:COL: KEY: message`, e.g. `prod.yaml:3:9: p2p.port: 70000 is out of range (1-65535)`;
//! - unknown key: `prod.yaml:5:3: p2p.prot: unknown key; did you mean `port`?`;
//! - malformed YAML: `FILE:LINE:COL: invalid YAML: <parser message>`;
//! - missing variables, alone: `Missing environment variables: A, B`.

mod config;
mod decode;
mod env;
mod error;
mod file;
mod genesis_check;
mod yaml;

use std::path::Path;

pub use config::{
    ApiConfig, BufferSizes, CacheConfig, ConsensusConfig, LogLevel, LoggingConfig,
    MAX_BYZANTINE_NODES, MAX_NODE_ID_BYTES, MemoryConfig, MempoolConfig, MetricKind, MetricSpec,
    MonitoringConfig, NodeConfig, NodeSettings, NodeTlsConfig, P2pConfig, PeerAddress,
    PerformanceConfig, RateLimitConfig, SecurityConfig, StorageBackend, StorageConfig, TlsFiles,
    bounds, redact_url,
};
pub use env::{
    AEGIS_HOME_VAR, DEFAULT_AEGIS_HOME, EnvLookup, MAX_DOTENV_FILE_BYTES, home_dotenv_path,
    load_dotenv, parse_dotenv, process_env, resolve_home, resolve_path,
};
pub use error::{ConfigError, ConfigErrors, DotenvError, LoadError, Location, MissingEnvVars};
pub use genesis_check::check_against_genesis;
pub use yaml::{MAX_CONFIG_FILE_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES};

use decode::{Ctx, Decode};
use file::FileConfig;

/// Reads, substitutes and validates the configuration file at `path`.
///
/// `env` supplies environment variables (use [`process_env`] for the real environment).
pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<NodeConfig, LoadError> {
    // A regular file of at most MAX_CONFIG_FILE_BYTES: a link to /dev/zero or a 50 MB file
    // is refused before anything is read, with its real size.
    let bytes = match aegis_fs::read_regular_file(path, MAX_CONFIG_FILE_BYTES as u64) {
        Ok(bytes) => bytes,
        Err(aegis_fs::ReadError::TooLarge { len, .. }) => {
            return Err(LoadError::Invalid(ConfigErrors(vec![ConfigError {
                file: path.display().to_string(),
                location: Location::START,
                key: String::new(),
                message: format!(
                    "file is {len} bytes, larger than the limit of {MAX_CONFIG_FILE_BYTES} bytes"
                ),
            }])));
        }
        Err(error) => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                source: error.into_io(),
            });
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
            let valid = String::from_utf8_lossy(valid);
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return Err(LoadError::Invalid(ConfigErrors(vec![ConfigError {
                file: path.display().to_string(),
                location: Location { line, column },
                key: String::new(),
                message: "the file is not valid UTF-8".to_owned(),
            }])));
        }
    };
    parse_str(&text, path, env)
}

/// Validates configuration `text` as if read from `path`. `path` names the file in errors
/// and, when `AEGIS_HOME` is unset, decides the home directory (see [`resolve_home`]).
pub fn parse_str(text: &str, path: &Path, env: EnvLookup<'_>) -> Result<NodeConfig, LoadError> {
    let file_name = path.display().to_string();
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(error) => {
            return Err(LoadError::Invalid(ConfigErrors(vec![ConfigError {
                file: file_name,
                location: error.location,
                key: String::new(),
                message: error.message,
            }])));
        }
    };
    let mut cx = Ctx::new(file_name, env);
    let file = match &root {
        Some(root) => FileConfig::decode(root, "", &mut cx).unwrap_or_default(),
        None => FileConfig::default(),
    };
    if !cx.missing.is_empty() {
        return Err(LoadError::MissingEnv(MissingEnvVars(
            cx.missing.into_iter().collect(),
        )));
    }
    let home = resolve_home(path, env);
    let config = config::build(file, path.to_path_buf(), home, &mut cx);
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = cx.errors;
        errors.sort_by_key(|error| error.location);
        Err(LoadError::Invalid(ConfigErrors(errors)))
    }
}
