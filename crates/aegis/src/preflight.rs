//! Everything the node checks before it starts, shared by `aegis run` and `aegis config check`:
//! the environment (with `$AEGIS_HOME/.env`), the configuration file, the genesis, the node key
//! and the TLS files (parsed: PEM, X.509, validity, the key matching the certificate, the CA
//! signing it). Each problem becomes one line naming the file and what is wrong. Every file
//! is read as a regular file of at most a named size ([`aegis_fs`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use aegis_config::{LoadError, NodeConfig};
use aegis_crypto::SecretKey;
use aegis_types::{Genesis, ValidatorId};

/// Variables every node needs whatever its configuration says.
const ALWAYS_REQUIRED: &[&str] = &["AEGIS_ENCRYPTION_KEY"];

/// The process environment, overlaid on the variables of `$AEGIS_HOME/.env` (the process wins).
#[derive(Debug, Default, Clone)]
pub struct NodeEnv {
    dotenv: BTreeMap<String, String>,
}

impl NodeEnv {
    /// Reads `HOME/.env` for the node whose configuration file is `config_path`.
    pub fn load(config_path: &Path) -> Result<NodeEnv, String> {
        let home = aegis_config::resolve_home(config_path, &aegis_config::process_env);
        let path = home.join(".env");
        let pairs = aegis_config::load_dotenv(&path).map_err(|error| error.to_string())?;
        Ok(NodeEnv {
            dotenv: pairs.into_iter().collect(),
        })
    }

    pub fn get(&self, name: &str) -> Option<String> {
        aegis_config::process_env(name).or_else(|| self.dotenv.get(name).cloned())
    }
}

/// A node ready to start: checked configuration, genesis and decrypted key.
#[derive(Debug)]
pub struct Preflight {
    pub config: NodeConfig,
    pub genesis: Genesis,
    pub secret: SecretKey,
    /// This node's place in the validator set.
    pub validator: ValidatorId,
    /// The node's name: `node.id`, `AEGIS_NODE_ID`, or the genesis name of its key.
    pub node_id: String,
}

/// Largest genesis file read: `aegis_types::validator::MAX_VALIDATORS` validators of a few hundred
/// bytes each fit well within it.
pub const MAX_GENESIS_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why the node cannot start, with the configuration when it could be read (so that
/// `aegis run` can write the problems to the node's log file too).
#[derive(Debug)]
pub struct PreflightFailure {
    pub error: PreflightError,
    pub config: Option<Box<NodeConfig>>,
}

impl fmt::Display for PreflightFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for PreflightFailure {}

impl From<PreflightError> for PreflightFailure {
    fn from(error: PreflightError) -> Self {
        PreflightFailure {
            error,
            config: None,
        }
    }
}

/// Why the node cannot start.
#[derive(Debug)]
pub enum PreflightError {
    /// Unset variables, reported alone as `Missing environment variables: A, B`.
    MissingEnv(Vec<String>),
    /// Every other problem, one line each.
    Problems(Vec<String>),
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreflightError::MissingEnv(names) => {
                write!(f, "Missing environment variables: {}", names.join(", "))
            }
            PreflightError::Problems(lines) => f.write_str(&lines.join("\n")),
        }
    }
}

impl std::error::Error for PreflightError {}

impl PreflightError {
    /// One line per problem.
    pub fn lines(&self) -> Vec<String> {
        match self {
            PreflightError::MissingEnv(_) => vec![self.to_string()],
            PreflightError::Problems(lines) => lines.clone(),
        }
    }
}

/// Runs every start-up check on the node configured by `config_path`.
pub fn preflight(config_path: &Path) -> Result<Preflight, PreflightFailure> {
    let env = NodeEnv::load(config_path).map_err(|line| PreflightError::Problems(vec![line]))?;
    let lookup = |name: &str| env.get(name);
    let mut missing: Vec<String> = ALWAYS_REQUIRED
        .iter()
        .filter(|name| lookup(name).is_none_or(|v| v.is_empty()))
        .map(|s| (*s).to_owned())
        .collect();
    let config = match aegis_config::load(config_path, &lookup) {
        Ok(config) => config,
        Err(LoadError::MissingEnv(vars)) => {
            missing.extend(vars.0);
            missing.sort();
            missing.dedup();
            return Err(PreflightError::MissingEnv(missing).into());
        }
        Err(LoadError::Invalid(errors)) => {
            return Err(
                PreflightError::Problems(errors.iter().map(ToString::to_string).collect()).into(),
            );
        }
        Err(error) => return Err(PreflightError::Problems(vec![error.to_string()]).into()),
    };
    if !missing.is_empty() {
        return Err(PreflightFailure {
            error: PreflightError::MissingEnv(missing),
            config: Some(Box::new(config)),
        });
    }

    let mut problems = Vec::new();
    let genesis = match load_genesis(&config.node.genesis_file) {
        Ok(genesis) => Some(genesis),
        Err(line) => {
            problems.push(format!("{} {line}", at(&config, "node.genesis_file")));
            None
        }
    };
    if let Some(genesis) = &genesis
        && let Err(errors) = aegis_config::check_against_genesis(&config, genesis)
    {
        problems.extend(errors.iter().map(ToString::to_string));
    }
    let passphrase = lookup("AEGIS_ENCRYPTION_KEY").unwrap_or_default();
    let secret = match aegis_crypto::read_key_file(&config.node.key_file, &passphrase) {
        Ok(secret) => Some(secret),
        Err(error) => {
            problems.push(format!("{} {error}", at(&config, "node.key_file")));
            None
        }
    };
    for problem in aegis_p2p::check_tls_files(&tls_files(&config), std::time::SystemTime::now()) {
        let key = match problem.file {
            aegis_p2p::TlsFileKind::Certificate => "security.tls.cert_file",
            aegis_p2p::TlsFileKind::Key => "security.tls.key_file",
            aegis_p2p::TlsFileKind::Ca => "security.tls.ca_file",
        };
        problems.push(format!("{} {}", at(&config, key), problem.message));
    }
    let mut identity = None;
    if let (Some(genesis), Some(secret)) = (&genesis, &secret) {
        match identify(&config, genesis, secret, &lookup) {
            Ok(found) => identity = Some(found),
            Err(line) => problems.push(line),
        }
    }
    match (genesis, secret, identity) {
        (Some(genesis), Some(secret), Some((validator, node_id))) if problems.is_empty() => {
            Ok(Preflight {
                config,
                genesis,
                secret,
                validator,
                node_id,
            })
        }
        _ => Err(PreflightFailure {
            error: PreflightError::Problems(problems),
            config: Some(Box::new(config)),
        }),
    }
}

/// `FILE:LINE:COL: KEY:`, where the configuration sets `key` (line 1, column 1 when defaulted).
fn at(config: &NodeConfig, key: &str) -> String {
    let location = config
        .location(key)
        .unwrap_or(aegis_config::Location::START);
    format!("{}:{location}: {key}:", config.source.display())
}

fn tls_files(config: &NodeConfig) -> aegis_p2p::TlsFiles {
    let tls = &config.security.tls;
    aegis_p2p::TlsFiles {
        cert_file: tls.cert_file.clone(),
        key_file: tls.key_file.clone(),
        ca_file: tls.ca_file.clone(),
    }
}

/// Reads and validates the genesis file; errors name the file and the line.
pub fn load_genesis(path: &Path) -> Result<Genesis, String> {
    let text = aegis_fs::read_regular_file_to_string(path, MAX_GENESIS_FILE_BYTES)
        .map_err(|error| error.to_string())?;
    Genesis::from_json(&text)
        .map_err(|error| format!("{}: invalid genesis: {error}", path.display()))
}

/// Finds this node in the validator set by its key and checks the configured name.
fn identify(
    config: &NodeConfig,
    genesis: &Genesis,
    secret: &SecretKey,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(ValidatorId, String), String> {
    let public_key = secret.public_key();
    let Some(index) = genesis
        .validators
        .iter()
        .position(|v| v.public_key == public_key)
    else {
        return Err(format!(
            "{} the key in {} (public key {public_key}) is not a validator of chain {:?} in {}",
            at(config, "node.key_file"),
            config.node.key_file.display(),
            genesis.chain_id,
            config.node.genesis_file.display()
        ));
    };
    let name = &genesis.validators[index].name;
    let configured = config
        .node
        .id
        .clone()
        .or_else(|| lookup("AEGIS_NODE_ID").filter(|v| !v.is_empty()));
    if let Some(configured) = &configured
        && configured != name
    {
        return Err(format!(
            "{} {configured:?} does not match the genesis, where this node's key belongs to {name:?}",
            at(config, "node.id")
        ));
    }
    Ok((ValidatorId(index as u16), name.clone()))
}
