//! `node:`: who this node is and where its own files live.

use std::path::PathBuf;

use crate::file::NodeFile;

use super::checker::Checker;

/// Longest `node.id` accepted, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// `node:` — who this node is and where its own files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    /// The validator name; `None` (key absent or empty) means: find the genesis validator
    /// whose public key matches the node key.
    pub id: Option<String>,
    pub key_file: PathBuf,
    pub genesis_file: PathBuf,
    pub data_dir: PathBuf,
}

pub(super) fn build_node(ck: &mut Checker<'_, '_>, file: NodeFile) -> NodeSettings {
    let NodeFile {
        id,
        key_file,
        genesis_file,
        data_dir,
    } = file;
    let id = id.trim().to_owned();
    let id = if id.is_empty() {
        None
    } else {
        let valid = id.len() <= MAX_NODE_ID_BYTES
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            ck.error(
                "node.id",
                format!(
                    "{id:?} is not a valid node id (1 to {MAX_NODE_ID_BYTES} characters of A-Z, a-z, 0-9, '.', '_', '-')"
                ),
            );
        }
        Some(id)
    };
    NodeSettings {
        id,
        key_file: ck.path("node.key_file", &key_file),
        genesis_file: ck.path("node.genesis_file", &genesis_file),
        data_dir: ck.path("node.data_dir", &data_dir),
    }
}
