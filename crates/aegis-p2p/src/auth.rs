//! The Hello: proof, inside one TLS session, that the peer holds a genesis validator's
//! Ed25519 key (ADR 0005).
//!
//! Right after the TLS handshake both sides send a Hello and read the other's. A Hello
//! carries the protocol version, the chain id, the genesis hash, the sender's validator
//! key, the port it listens on, and an Ed25519 signature over
//!
//! ```text
//! "AEGIS/p2p-hello/v1" || role || exporter || borsh(fields without the signature)
//! ```
//!
//! where `exporter` is 32 bytes of TLS keying material (RFC 8446 §7.5, label
//! [`EXPORTER_LABEL`]) that only the two ends of this session know, and `role` says
//! whether the signer dialled or accepted. A Hello therefore cannot be replayed on another
//! session (the exporter differs) nor reflected back to its sender (the role differs).

use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_types::{Genesis, Hash, PublicKey, Signature, ValidatorId, ValidatorSet};
use borsh::{BorshDeserialize, BorshSerialize};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::wire::{self, FrameError, HANDSHAKE_MAX_FRAME_SIZE, RecordKind};

/// The P2P protocol version this build speaks (2: the Hello says whether the connection is
/// a peer's or a connectivity probe's, docs/adr/0015-operator-tools.md).
pub const PROTOCOL_VERSION: u16 = 2;
/// Label of the TLS exporter the Hello signs.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-aegis-p2p-hello-v1";
/// Bytes of exporter output signed.
pub const EXPORTER_BYTES: usize = 32;
const SIGNING_DOMAIN: &[u8] = b"AEGIS/p2p-hello/v1";
/// Longest chain id echoed back in a log line.
const MAX_LOGGED_CHAIN_ID: usize = 64;

/// Which end of the TCP connection a party is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Dialer => 0,
            Role::Acceptor => 1,
        }
    }

    fn other(self) -> Role {
        match self {
            Role::Dialer => Role::Acceptor,
            Role::Acceptor => Role::Dialer,
        }
    }
}

/// Who this node is on the network: its key and the chain it belongs to.
#[derive(Clone, Debug)]
pub struct Identity {
    secret: SecretKey,
    public_key: PublicKey,
    chain_id: String,
    genesis_hash: Hash,
    validators: ValidatorSet,
}

impl Identity {
    /// The identity for `secret` on the chain of `genesis`. The key need not be a
    /// validator's (such a node is refused by validators, as it should be).
    pub fn new(
        secret: SecretKey,
        genesis: &Genesis,
    ) -> Result<Identity, aegis_types::GenesisError> {
        Ok(Identity {
            public_key: secret.public_key(),
            secret,
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            validators: genesis.validator_set()?,
        })
    }

    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// This node's index in the validator set, if it is a validator.
    pub fn validator_id(&self) -> Option<ValidatorId> {
        self.validators.id_of(&self.public_key)
    }

    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
}

/// What an authenticated connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A validator's session: it joins the peer table (and replaces an older session of the
    /// same validator by the duplicate rule).
    Peer,
    /// `aegis validators check`: authenticate, answer pings for a moment, close. Never
    /// registered as a peer, so checking a running network does not disturb its mesh.
    Probe,
}

impl Purpose {
    fn byte(self) -> u8 {
        match self {
            Purpose::Peer => 0,
            Purpose::Probe => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<Purpose> {
        match byte {
            0 => Some(Purpose::Peer),
            1 => Some(Purpose::Probe),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct HelloFields {
    protocol_version: u16,
    chain_id: String,
    genesis_hash: [u8; 32],
    public_key: [u8; 32],
    listen_port: u16,
    /// [`Purpose`]; signed like every other field.
    purpose: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Hello {
    fields: HelloFields,
    signature: [u8; 64],
}

/// A peer that proved its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticatedPeer {
    pub id: ValidatorId,
    pub public_key: PublicKey,
    /// The port the peer says it listens on (0 if it does not).
    pub listen_port: u16,
    /// What the peer opened the connection for.
    pub purpose: Purpose,
}

/// What a refused CA certificate as a node's certificate means, added to the TLS error
/// (`CaUsedAsEndEntity`) where it is logged: only a network CA (`security.tls.ca_file`)
/// refuses it, and the guide's `openssl req -x509` makes exactly such certificates.
pub const CA_AS_NODE_CERTIFICATE_HINT: &str = "the peer's certificate is a CA certificate \
     (basicConstraints CA:TRUE, what `openssl req -x509` makes by default); with a network CA \
     (security.tls.ca_file) a node's certificate must be issued by that CA with CA:FALSE; \
     self-signed certificates need every node without ca_file (docs/security.md)";

impl AuthError {
    /// A failed TLS handshake, explained when the peer's certificate is a CA certificate
    /// that a network CA refuses as an end entity.
    pub fn tls(error: &impl std::fmt::Display) -> AuthError {
        let text = error.to_string();
        if text.contains("CaUsedAsEndEntity") {
            AuthError::Tls(format!("{text} ({CA_AS_NODE_CERTIFICATE_HINT})"))
        } else {
            AuthError::Tls(text)
        }
    }
}

/// Why a peer failed to authenticate. The `Display` text is the `<reason>` of the log line
/// `Authentication failed for peer from <IP>: <reason>`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("not a TLS connection (first byte {0:#04x}; plaintext on the TLS port?)")]
    NotTls(u8),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("handshake not finished within {0:?}")]
    Timeout(Duration),
    #[error("no client certificate presented")]
    NoClientCertificate,
    #[error("TLS keying material unavailable: {0}")]
    Exporter(String),
    #[error("connection closed before the Hello")]
    ClosedBeforeHello,
    #[error("malformed Hello frame: {0}")]
    Frame(#[from] FrameError),
    #[error("expected a Hello, got a {0} record")]
    NotHello(&'static str),
    #[error("malformed Hello")]
    Malformed,
    #[error("unsupported protocol version {0} (this node speaks {PROTOCOL_VERSION})")]
    Version(u16),
    #[error("chain id mismatch: peer is on {0:?}")]
    ChainId(String),
    #[error("genesis hash mismatch: peer has {0}")]
    GenesisHash(Hash),
    #[error("public key {0} is not in the validator set")]
    UnknownKey(PublicKey),
    #[error("Hello signature does not verify under key {0}")]
    BadSignature(PublicKey),
    #[error("I/O error during the Hello: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "connection closed without sending anything ({count} such connections within {window:?}; more than {} count as failures)",
        crate::limits::SILENT_CONNECTIONS_ALLOWED
    )]
    Silent { count: u32, window: Duration },
}

fn signing_bytes(role: Role, exporter: &[u8; EXPORTER_BYTES], fields: &HelloFields) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(SIGNING_DOMAIN);
    bytes.push(role.byte());
    bytes.extend_from_slice(exporter);
    // Serialising plain data into a Vec cannot fail.
    let _ = fields.serialize(&mut bytes);
    bytes
}

/// Sends our Hello (for a peer's session) and checks the peer's, on any byte stream whose
/// session exported `exporter`. The caller bounds the time taken.
pub async fn exchange_hello<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    exporter: &[u8; EXPORTER_BYTES],
    role: Role,
    identity: &Identity,
    listen_port: u16,
) -> Result<AuthenticatedPeer, AuthError> {
    exchange_hello_for(stream, exporter, role, identity, listen_port, Purpose::Peer).await
}

/// [`exchange_hello`], saying what this side opens the connection for.
pub async fn exchange_hello_for<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    exporter: &[u8; EXPORTER_BYTES],
    role: Role,
    identity: &Identity,
    listen_port: u16,
    purpose: Purpose,
) -> Result<AuthenticatedPeer, AuthError> {
    let fields = HelloFields {
        protocol_version: PROTOCOL_VERSION,
        chain_id: identity.chain_id.clone(),
        genesis_hash: identity.genesis_hash.0,
        public_key: identity.public_key.0,
        listen_port,
        purpose: purpose.byte(),
    };
    let signature = identity
        .secret
        .sign(&signing_bytes(role, exporter, &fields));
    let hello = Hello {
        fields,
        signature: signature.0,
    };
    let payload = borsh::to_vec(&hello).map_err(|_| AuthError::Malformed)?;
    stream
        .write_all(&wire::single_record_frame(RecordKind::Hello, 0, &payload))
        .await?;
    stream.flush().await?;

    let mut buffer = BytesMut::new();
    // The caller's handshake timeout bounds the whole exchange, stalls included.
    let frame = wire::read_frame(stream, &mut buffer, HANDSHAKE_MAX_FRAME_SIZE, Duration::MAX)
        .await?
        .ok_or(AuthError::ClosedBeforeHello)?;
    let records = wire::decode_frame(frame, HANDSHAKE_MAX_FRAME_SIZE)?;
    let [record] = records.as_slice() else {
        return Err(AuthError::Malformed);
    };
    if record.kind != RecordKind::Hello {
        return Err(AuthError::NotHello(record.kind.label()));
    }
    let hello = Hello::try_from_slice(&record.payload).map_err(|_| AuthError::Malformed)?;
    verify_hello(&hello, role.other(), exporter, identity)
}

fn verify_hello(
    hello: &Hello,
    peer_role: Role,
    exporter: &[u8; EXPORTER_BYTES],
    identity: &Identity,
) -> Result<AuthenticatedPeer, AuthError> {
    let fields = &hello.fields;
    if fields.protocol_version != PROTOCOL_VERSION {
        return Err(AuthError::Version(fields.protocol_version));
    }
    if fields.chain_id != identity.chain_id {
        let shown: String = fields.chain_id.chars().take(MAX_LOGGED_CHAIN_ID).collect();
        return Err(AuthError::ChainId(shown));
    }
    if fields.genesis_hash != identity.genesis_hash.0 {
        return Err(AuthError::GenesisHash(Hash(fields.genesis_hash)));
    }
    let purpose = Purpose::from_byte(fields.purpose).ok_or(AuthError::Malformed)?;
    let key = PublicKey(fields.public_key);
    let id = identity
        .validators
        .id_of(&key)
        .ok_or(AuthError::UnknownKey(key))?;
    aegis_crypto::verify(
        &key,
        &signing_bytes(peer_role, exporter, fields),
        &Signature(hello.signature),
    )
    .map_err(|_| AuthError::BadSignature(key))?;
    Ok(AuthenticatedPeer {
        id,
        public_key: key,
        listen_port: fields.listen_port,
        purpose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_types::{ConsensusParams, Validator};

    fn genesis(keys: &[PublicKey]) -> Genesis {
        Genesis {
            chain_id: "test-chain".into(),
            genesis_time_ms: 0,
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, key)| Validator {
                    name: format!("node{i}"),
                    public_key: *key,
                    p2p_address: format!("127.0.0.1:{}", 8000 + i),
                    api_address: format!("127.0.0.1:{}", 8080 + i),
                })
                .collect(),
            consensus: ConsensusParams {
                max_byzantine_nodes: 0,
                ..ConsensusParams::default()
            },
        }
    }

    async fn run_pair(
        a: &Identity,
        b: &Identity,
        exporter_a: [u8; 32],
        exporter_b: [u8; 32],
    ) -> (
        Result<AuthenticatedPeer, AuthError>,
        Result<AuthenticatedPeer, AuthError>,
    ) {
        let (mut x, mut y) = tokio::io::duplex(8192);
        let left = exchange_hello(&mut x, &exporter_a, Role::Dialer, a, 1);
        let right = exchange_hello(&mut y, &exporter_b, Role::Acceptor, b, 2);
        tokio::join!(left, right)
    }

    #[tokio::test]
    async fn validators_authenticate_each_other() {
        let (ka, kb) = (SecretKey::generate(), SecretKey::generate());
        let g = genesis(&[ka.public_key(), kb.public_key()]);
        let a = Identity::new(ka, &g).unwrap();
        let b = Identity::new(kb, &g).unwrap();
        let (ra, rb) = run_pair(&a, &b, [7; 32], [7; 32]).await;
        let ra = ra.unwrap();
        let rb = rb.unwrap();
        assert_eq!(ra.public_key, b.public_key());
        assert_eq!(ra.listen_port, 2);
        assert_eq!(rb.public_key, a.public_key());
        assert_eq!(rb.id, ValidatorId(0));
    }

    #[tokio::test]
    async fn different_sessions_do_not_verify() {
        let (ka, kb) = (SecretKey::generate(), SecretKey::generate());
        let g = genesis(&[ka.public_key(), kb.public_key()]);
        let a = Identity::new(ka, &g).unwrap();
        let b = Identity::new(kb, &g).unwrap();
        let (ra, rb) = run_pair(&a, &b, [7; 32], [8; 32]).await;
        assert!(matches!(ra, Err(AuthError::BadSignature(_))));
        assert!(matches!(rb, Err(AuthError::BadSignature(_))));
    }

    #[tokio::test]
    async fn outsider_is_refused() {
        let (ka, kb) = (SecretKey::generate(), SecretKey::generate());
        let g = genesis(&[ka.public_key()]);
        let a = Identity::new(ka, &g).unwrap();
        let b = Identity::new(kb, &g).unwrap();
        let (ra, _) = run_pair(&a, &b, [7; 32], [7; 32]).await;
        assert!(matches!(ra, Err(AuthError::UnknownKey(_))));
    }

    #[tokio::test]
    async fn another_chain_is_refused() {
        let (ka, kb) = (SecretKey::generate(), SecretKey::generate());
        let g = genesis(&[ka.public_key(), kb.public_key()]);
        let mut other = g.clone();
        other.chain_id = "other-chain".into();
        let a = Identity::new(ka.clone(), &g).unwrap();
        let b = Identity::new(kb.clone(), &other).unwrap();
        let (ra, _) = run_pair(&a, &b, [7; 32], [7; 32]).await;
        assert!(
            matches!(ra, Err(AuthError::ChainId(ref id)) if id == "other-chain"),
            "{ra:?}"
        );
        // Same chain id, different genesis (another validator list or time).
        let mut forked = g.clone();
        forked.genesis_time_ms = 1;
        let b = Identity::new(kb, &forked).unwrap();
        let (ra, _) = run_pair(&a, &b, [7; 32], [7; 32]).await;
        assert!(matches!(ra, Err(AuthError::GenesisHash(_))), "{ra:?}");
    }

    #[tokio::test]
    async fn reflected_hello_is_refused() {
        let ka = SecretKey::generate();
        let g = genesis(&[ka.public_key()]);
        let a = Identity::new(ka, &g).unwrap();
        // The peer echoes our own Hello back: same exporter, wrong role.
        let (mut x, mut y) = tokio::io::duplex(8192);
        let echo = async move {
            let mut buf = vec![0u8; 4096];
            let n = tokio::io::AsyncReadExt::read(&mut y, &mut buf)
                .await
                .unwrap();
            y.write_all(&buf[..n]).await.unwrap();
        };
        let (result, ()) =
            tokio::join!(exchange_hello(&mut x, &[1; 32], Role::Dialer, &a, 1), echo);
        assert!(
            matches!(result, Err(AuthError::BadSignature(_))),
            "{result:?}"
        );
    }
}
