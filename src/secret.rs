//! Secret material: a wrapper whose `Debug` never prints the value, and the two primitives every
//! credential check uses (SHA-256 digests and constant-time comparison, via `sha2` and `subtle`).
//! A leaf module: it reads no files and knows nothing of the config.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string from the config (API key, client secret, HMAC secret, PEM text).
/// `Debug` prints `[redacted]`; there is deliberately no `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from the config, an env var or a `*_file`.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret bytes; callers must not log them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// SHA-256 of `data`, 32 bytes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Finds which of `digests` equals SHA-256(`presented`), comparing every entry in constant time
/// (no early exit, so timing does not reveal a prefix match or how many keys exist before it).
pub fn find_digest(presented: &[u8], digests: &[[u8; 32]]) -> Option<usize> {
    let hash = sha256(presented);
    let mut found: Option<usize> = None;
    for (i, d) in digests.iter().enumerate() {
        if bool::from(d.ct_eq(&hash)) {
            found = Some(i);
        }
    }
    found
}

/// Parses a 64-character hex SHA-256 digest from the config (`sha256`, `secret_sha256`).
pub fn parse_digest(hex_digest: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "[redacted]");
    }

    #[test]
    fn find_digest_matches_only_the_right_key() {
        let keys = [sha256(b"a"), sha256(b"b")];
        assert_eq!(find_digest(b"b", &keys), Some(1));
        assert_eq!(find_digest(b"c", &keys), None);
        assert!(parse_digest("zz").is_none());
        assert_eq!(parse_digest(&hex::encode(sha256(b"a"))), Some(keys[0]));
    }
}
