//! Loading the config file: YAML -> typed [`schema::Config`] with env expansion, and errors that
//! name the file, line, column and field path, never a secret value. The reference for every
//! field is `docs/config.md`.

pub mod assertion;
pub mod authenticators;
pub mod error;
pub mod files;
mod locate;
pub mod schema;
pub mod value;

pub use error::{ConfigError, FieldError};
pub use locate::{locate, locate_error};
pub use schema::*;

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
    let fix = |f: &mut Option<value::Str>| {
        if let Some(s) = f {
            if Path::new(&s.0).is_relative() {
                s.0 = dir.join(&s.0).display().to_string();
            }
        }
    };
    fix(&mut cfg.upstream.ca_file);
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
    // A key given twice in one mapping (two authenticators of one name, say) is an error
    // anywhere: typed maps would otherwise keep the last silently. serde_yaml's own `Value`
    // refuses duplicates, with their location.
    if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        if e.to_string().contains("duplicate entry") {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let mut text = e.to_string();
            if let Some(i) = text.find(" at line ") {
                text.truncate(i);
            }
            let (path, message) = match text.split_once(": duplicate") {
                Some((path, rest)) => (path.to_string(), format!("duplicate{rest}")),
                None => (".".to_string(), text),
            };
            return Err(ConfigError::Parse {
                file: file.to_string(),
                line,
                column,
                path,
                message,
            });
        }
    }
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or_else(|| (locate(text, &path), 1));
        let mut message = inner.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        if let Some((prefix, rest)) = message.split_once(": ") {
            if !prefix.contains(' ') && path.starts_with(prefix.trim_end_matches('.')) {
                message = rest.to_string();
            }
        }
        // Internally tagged enums (authenticators) buffer their content, so serde reports the
        // authenticator's own line: point at the offending line within it instead.
        let (line, column) = locate::refine(text, line, column, &message);
        ConfigError::Parse {
            file: file.to_string(),
            line,
            column,
            path: if path.is_empty() { ".".into() } else { path },
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nupstream:\n  url: x\nauthenticators:\n  a:\n    type: jwt\n    keys:\n      - { kid: k1, pem_file: /a }\n      - kid: k2\n        pem_file: /b\nroutes:\n  - name: r\n    path: /x\n";

    #[test]
    fn locates_block_and_flow_fields() {
        assert_eq!(locate(DOC, "upstream.url"), 3);
        assert_eq!(locate(DOC, "authenticators.a.keys[0].pem_file"), 8);
        assert_eq!(locate(DOC, "authenticators.a.keys[1].pem_file"), 10);
        assert_eq!(locate(DOC, "routes[0].path"), 13);
        assert_eq!(locate(DOC, "routes[5].path"), 11);
    }

    #[test]
    fn unknown_field_names_line_and_path() {
        let doc = "version: 1\nupstream:\n  url: http://x\n  urll: y\n";
        let e = parse_str(doc, "c.yaml").unwrap_err().to_string();
        assert!(e.starts_with("c.yaml:4:"), "{e}");
        assert!(e.contains("unknown field `urll`"), "{e}");
    }
}
