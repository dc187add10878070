//! The encrypted node key file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use aegis_crypto::keyfile::{decrypt_key, encrypt_key, read_public_key};
use aegis_crypto::{KdfParams, KeyFileError, SecretKey, read_key_file, write_key_file};

/// Cheap KDF parameters keep the tests fast; the format and code path are the production ones.
const FAST: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

#[test]
fn round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node_key.json");
    let secret = SecretKey::generate();
    write_key_file(&path, &secret, "correct horse", FAST).unwrap();
    let loaded = read_key_file(&path, "correct horse").unwrap();
    assert_eq!(loaded.to_bytes(), secret.to_bytes());
    assert_eq!(read_public_key(&path).unwrap(), secret.public_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // The secret never appears in the file in clear.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&hex::encode(secret.to_bytes())));
}

#[test]
fn default_parameters_round_trip() {
    let secret = SecretKey::generate();
    let text = encrypt_key(&secret, "k", KdfParams::default()).unwrap();
    let loaded = decrypt_key(&text, "k", "mem".as_ref()).unwrap();
    assert_eq!(loaded.public_key(), secret.public_key());
}

#[test]
fn wrong_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node_key.json");
    write_key_file(&path, &SecretKey::generate(), "right", FAST).unwrap();
    let error = read_key_file(&path, "wrong").unwrap_err();
    assert!(matches!(error, KeyFileError::Decrypt { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "cannot decrypt key file {}: wrong AEGIS_ENCRYPTION_KEY, or the file was tampered with",
            path.display()
        )
    );
    assert_eq!(
        read_key_file(&path, "").unwrap_err().to_string(),
        "the encryption key is empty: set AEGIS_ENCRYPTION_KEY"
    );
}

#[test]
fn tampering_with_any_field_fails_decryption() {
    let secret = SecretKey::generate();
    let text = encrypt_key(&secret, "pw", FAST).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let flip = |s: &str| {
        let mut bytes = hex::decode(s).unwrap();
        bytes[0] ^= 1;
        hex::encode(bytes)
    };
    for pointer in [
        "/public_key",
        "/kdf/salt",
        "/cipher/nonce",
        "/cipher/ciphertext",
    ] {
        let mut tampered = json.clone();
        let field = tampered.pointer_mut(pointer).unwrap();
        *field = serde_json::Value::String(flip(field.as_str().unwrap()));
        let result = decrypt_key(&tampered.to_string(), "pw", "f".as_ref());
        assert!(
            matches!(result, Err(KeyFileError::Decrypt { .. })),
            "{pointer}: {result:?}"
        );
    }
    // A changed cost parameter is bound by the associated data too.
    *json.pointer_mut("/kdf/iterations").unwrap() = 2.into();
    assert!(matches!(
        decrypt_key(&json.to_string(), "pw", "f".as_ref()),
        Err(KeyFileError::Decrypt { .. })
    ));
}

#[test]
fn malformed_or_hostile_files_are_refused_without_panic() {
    let path = std::path::Path::new("/etc/aegis/node_key.json");
    for text in ["", "{", "[]", "{\"version\":1}", "null", "\u{0}\u{1}"] {
        let error = decrypt_key(text, "pw", path).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("key file /etc/aegis/node_key.json is not a valid AEGIS key file"),
            "{error}"
        );
    }
    // Absurd KDF costs are refused before any work is done.
    let secret = SecretKey::generate();
    let mut json: serde_json::Value =
        serde_json::from_str(&encrypt_key(&secret, "pw", FAST).unwrap()).unwrap();
    *json.pointer_mut("/kdf/memory_kib").unwrap() = u32::MAX.into();
    let error = decrypt_key(&json.to_string(), "pw", path).unwrap_err();
    assert!(error.to_string().contains("exceed the limits"), "{error}");
    // Issue 10, finding 5: a device reports a length of 0, so a size check on the path's
    // metadata let `/dev/zero` through; the opened file must be a regular one.
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("node_key.json");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for error in [
        read_key_file(&zero, "pw").unwrap_err(),
        read_public_key(&zero).unwrap_err(),
    ] {
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read key file {}: not a regular file (it is a character device)",
                zero.display()
            )
        );
    }
    let missing = read_key_file("/nonexistent/aegis/key.json".as_ref(), "pw").unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("cannot read key file /nonexistent/aegis/key.json: "),
        "{missing}"
    );
}
