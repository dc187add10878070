//! Rules that need both the configuration and the genesis.

use aegis_types::{ConsensusAlgorithm, Genesis};

use crate::config::NodeConfig;
use crate::error::{ConfigError, Location};

/// Checks the configuration against the network's genesis:
/// - the genesis's validator count n satisfies n >= 3f + 1 for PBFT, n >= 2f + 1 for Raft
///   (which tolerates crashed validators only), f = `consensus.max_byzantine_nodes`;
/// - n >= `consensus.min_validators`;
/// - `consensus.algorithm` is the genesis's algorithm.
///
/// Each error points at the configuration key (or line 1, column 1 when the key took its
/// default) and names the genesis file (`node.genesis_file`).
pub fn check_against_genesis(
    config: &NodeConfig,
    genesis: &Genesis,
) -> Result<(), Vec<ConfigError>> {
    let genesis_file = config.node.genesis_file.display();
    let n = genesis.validators.len() as u64;
    let consensus = &config.consensus;
    let mut errors = Vec::new();
    let mut error = |key: &str, message: String| {
        errors.push(ConfigError {
            file: config.source.display().to_string(),
            location: config.location(key).unwrap_or(Location::START),
            key: key.to_owned(),
            message,
        });
    };
    if consensus.algorithm != genesis.consensus.algorithm {
        error(
            "consensus.algorithm",
            format!(
                "{:?} does not match the genesis file {genesis_file}, which uses {:?}",
                consensus.algorithm.as_str(),
                genesis.consensus.algorithm.as_str()
            ),
        );
    }
    let f = u64::from(consensus.max_byzantine_nodes);
    let (needed, rule, faults) = match genesis.consensus.algorithm {
        ConsensusAlgorithm::Pbft => (3 * f + 1, "3f+1", "Byzantine"),
        ConsensusAlgorithm::Raft => (2 * f + 1, "2f+1", "crashed"),
    };
    if n < needed {
        error(
            "consensus.max_byzantine_nodes",
            format!(
                "the genesis file {genesis_file} has {n} validators, but tolerating f = {f} {faults} nodes needs n >= {rule} = {needed}"
            ),
        );
    }
    let min = u64::from(consensus.min_validators);
    if n < min {
        error(
            "consensus.min_validators",
            format!(
                "the genesis file {genesis_file} has {n} validators, fewer than consensus.min_validators = {min}"
            ),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
