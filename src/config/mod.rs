//! Loading the config file: YAML -> typed [`schema::Config`] with env expansion, and errors that
//! name the file, line, column and field path, never a secret value.

pub mod schema;
pub mod value;

pub use schema::*;

use std::path::Path;

/// A config that could not be loaded. `Display` is `file:line:col: field.path: problem`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file.
        file: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// YAML syntax, unknown field, wrong type or unset env var.
    #[error("{file}:{line}:{column}: {path}: {message}")]
    Parse {
        /// The config file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted field path, e.g. `routes[2].auth`.
        path: String,
        /// What is wrong (never a secret value).
        message: String,
    },
    /// A semantic problem found while compiling (bad PEM, overlapping routes, ...).
    #[error("{file}:{line}: {path}: {message}")]
    Invalid {
        /// The config file.
        file: String,
        /// 1-based line of the field.
        line: usize,
        /// Dotted field path.
        path: String,
        /// What is wrong (never a secret value).
        message: String,
    },
}

/// A semantic error found by the compile step, before it is given a file and line.
#[derive(Debug, Clone)]
pub struct FieldError {
    /// Dotted field path, e.g. `authenticators.knock_user.keys[0].pem_file`.
    pub path: String,
    /// What is wrong; never contains a secret value.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Reads and parses `path` (no semantic checks: see `crate::runtime::compile`).
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
        let (line, column) = refine(text, line, column, &message);
        ConfigError::Parse {
            file: file.to_string(),
            line,
            column,
            path: if path.is_empty() { ".".into() } else { path },
            message,
        }
    })
}

fn refine(text: &str, line: usize, column: usize, message: &str) -> (usize, usize) {
    let needle = if let Some(rest) = message.strip_prefix("environment variable ") {
        rest.split(' ').next().map(|v| format!("${{{v}"))
    } else if let Some(rest) = message.strip_prefix("unknown field `") {
        rest.split('`').next().map(|f| format!("{f}:"))
    } else {
        None
    };
    let Some(needle) = needle else {
        return (line, column);
    };
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .find_map(|(i, l)| l.find(&needle).map(|c| (i + 1, c + 1)))
        .unwrap_or((line, column))
}

/// Turns a compile-time [`FieldError`] into a [`ConfigError`] with the line of its field.
pub fn locate_error(text: &str, file: &str, e: FieldError) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        line: locate(text, &e.path),
        path: e.path,
        message: e.message,
    }
}

/// Best-effort line (1-based) of a dotted field path (`a.b[2].c`) in block- or flow-style YAML.
/// Falls back to the deepest ancestor found; never fails.
pub fn locate(text: &str, path: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut cur = 0usize; // index of the line of the current node
    let mut indent: isize = -1; // indentation of the current node's key
    let mut inline_from = 0usize; // byte offset within `cur` where the current node begins
    for seg in split_path(path) {
        match seg {
            Seg::Key(key) => {
                let needle = format!("{key}:");
                // Same line first (flow style), after the current node's start.
                if let Some(l) = lines.get(cur) {
                    if let Some(pos) = find_key(&l[inline_from.min(l.len())..], &needle) {
                        inline_from += pos + needle.len();
                        continue;
                    }
                }
                let mut found = false;
                for (i, ind, t) in significant_lines(&lines, cur + 1) {
                    let l = lines[i];
                    if ind <= indent {
                        break;
                    }
                    let body = t.trim_start_matches("- ");
                    if body.starts_with(&needle)
                        || find_key(t, &needle).is_some() && t.starts_with('-')
                    {
                        cur = i;
                        indent = ind;
                        inline_from = l.find(&needle).map(|p| p + needle.len()).unwrap_or(0);
                        found = true;
                        break;
                    }
                }
                if !found {
                    break;
                }
            }
            Seg::Index(n) => {
                let mut seen = 0usize;
                let mut item_indent: Option<isize> = None;
                let mut found = false;
                for (i, ind, t) in significant_lines(&lines, cur + 1) {
                    let l = lines[i];
                    if ind < indent || (ind == indent && !t.starts_with('-')) {
                        break;
                    }
                    if t.starts_with('-') && item_indent.is_none_or(|x| x == ind) {
                        item_indent = Some(ind);
                        if seen == n {
                            cur = i;
                            indent = ind;
                            inline_from = (l.len() - t.len()) + 1;
                            found = true;
                            break;
                        }
                        seen += 1;
                    }
                }
                if !found {
                    break;
                }
            }
        }
    }
    cur + 1
}

/// Lines from `from` on that are neither blank nor comments: (index, indentation, trimmed text).
fn significant_lines<'a>(
    lines: &'a [&'a str],
    from: usize,
) -> impl Iterator<Item = (usize, isize, &'a str)> {
    lines.iter().enumerate().skip(from).filter_map(|(i, l)| {
        let t = l.trim_start();
        (!t.is_empty() && !t.starts_with('#')).then(|| (i, (l.len() - t.len()) as isize, t))
    })
}

fn find_key(hay: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = hay[from..].find(needle) {
        let at = from + p;
        let before = hay[..at].chars().last();
        if before.is_none_or(|c| c == '{' || c == ',' || c == ' ' || c == '-') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(n) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(n));
            }
        }
    }
    out
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
