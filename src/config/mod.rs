//! Loading the config file: YAML -> typed [`schema::Config`] with env expansion, and errors that
//! name the file, line, column and field path, never a secret value. The reference for every
//! field is `docs/config.md`.

pub mod assertion;
pub mod authenticators;
pub mod error;
pub mod files;
pub mod forward_auth;
pub mod routes;
pub mod schema;
pub mod sessions;
pub mod shared;
mod spans;
pub mod value;
pub mod yaml;

pub use error::{ConfigError, FieldError};
pub use forward_auth::{ForwardAuthConfig, Front};
pub use routes::*;
pub use schema::*;
pub use yaml::locate_error;

use std::path::Path;

/// Reads and parses `path` (no semantic checks: see `crate::ruleset`).
pub fn load_file(path: &Path) -> Result<(Config, String), ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let mut config = parse_str(&text, &file)?;
    if let Some(dir) = path.parent() {
        rebase_files(&mut config, dir);
    }
    Ok((config, text))
}

/// Makes every relative `*_file` path relative to the config file's directory `dir`.
pub fn rebase_files(cfg: &mut Config, dir: &Path) {
    for_each_file(cfg, true, |f| {
        if Path::new(f.as_str()).is_relative() {
            *f = dir.join(&*f).display().to_string();
        }
    });
}

/// Every file the config names (keys, secrets, CA and TLS files; not `revocations.file`,
/// which is watched on its own): a change to one of them reloads the config like a change to
/// the config file itself.
pub fn referenced_files(cfg: &mut Config) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for_each_file(cfg, false, |f| {
        out.push(std::path::PathBuf::from(f.as_str()))
    });
    out
}

/// Calls `f` on every `*_file` path of the config (`revocations.file` too when `revocations`).
fn for_each_file(cfg: &mut Config, revocations: bool, mut f: impl FnMut(&mut String)) {
    let mut fix = |o: &mut Option<value::Str>| {
        if let Some(s) = o {
            f(&mut s.0);
        }
    };
    fix(&mut cfg.upstream.ca_file);
    if let Some(r) = cfg.revocations.as_mut().filter(|_| revocations) {
        let mut file = Some(r.file.clone());
        fix(&mut file);
        r.file = file.unwrap_or_default();
    }
    if let Some(a) = cfg
        .identity
        .assertion
        .as_mut()
        .filter(|a| !a.key_file.is_empty())
    {
        let mut k = Some(a.key_file.clone());
        fix(&mut k);
        a.key_file = k.unwrap_or_default();
        for p in &mut a.previous_keys {
            let mut k = Some(p.key_file.clone());
            fix(&mut k);
            p.key_file = k.unwrap_or_default();
        }
    }
    if let Some(t) = &mut cfg.tls {
        let (mut c, mut k) = (Some(t.cert_file.clone()), Some(t.key_file.clone()));
        fix(&mut c);
        fix(&mut k);
        (t.cert_file, t.key_file) = (c.unwrap_or_default(), k.unwrap_or_default());
    }
    for a in cfg.authenticators.values_mut() {
        match a {
            AuthenticatorConfig::PublicKey(c) => {
                c.keys.iter_mut().for_each(|k| fix(&mut k.value_file))
            }
            AuthenticatorConfig::ApiKey(c) => {
                c.keys.iter_mut().for_each(|k| fix(&mut k.value_file))
            }
            AuthenticatorConfig::ClientSecret(c) => {
                c.clients.iter_mut().for_each(|k| fix(&mut k.secret_file))
            }
            AuthenticatorConfig::HmacToken(c) => fix(&mut c.secret_file),
            AuthenticatorConfig::Jwt(c) => c.keys.iter_mut().for_each(|k| {
                fix(&mut k.pem_file);
                fix(&mut k.secret_file);
                fix(&mut k.jwks_file);
            }),
        }
    }
}

/// Parses YAML `text`; `file` is only used in error messages.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    yaml::from_str(text, file)
}
