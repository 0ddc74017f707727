//! The `sessions` and `revocations` blocks of the config document (`docs/config.md`,
//! "Sessions and revocation").

use serde::Deserialize;

use super::value::Str;

/// `sessions:` what happens to upgraded connections (websockets, Socket.IO) after their
/// credential was checked (`docs/config.md`, "Sessions and revocation").
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Close a session when the credential that opened it expires (`exp` + `leeway_seconds`)
    /// (true).
    pub end_at_expiry: bool,
    /// Open sessions are re-authorized at least this often against the rules and revocations
    /// in force, seconds (5).
    pub recheck_seconds: u64,
    /// Any upgraded connection is closed this long after it opened, seconds; 0: no cap (0).
    pub max_lifetime_seconds: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            end_at_expiry: true,
            recheck_seconds: 5,
            max_lifetime_seconds: 0,
        }
    }
}

/// `revocations:` where revocation entries come from.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RevocationsConfig {
    /// A YAML list of revocation entries, watched and applied like the config (required);
    /// relative to the config file's directory. Needs a restart to change.
    pub file: Str,
}
