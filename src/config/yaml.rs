//! Reading YAML into the typed schema with serde-saphyr, which reports where each error is and
//! refuses a key given twice in one mapping by itself (one parse; no duplicate-key pre-pass).
//! Errors become [`ConfigError::Parse`]: `file:line:column: field.path: problem`, the path from
//! `serde_path_to_error`, the message with no location suffix and no source snippet (a snippet
//! would print the YAML line, secrets included).

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde_saphyr::{DefaultMessageFormatter, Error, MessageFormatter, Options};

use super::spans::Spans;
use super::{ConfigError, FieldError};

/// YAML 1.2 as serde_yaml read it (`yes`/`on` are strings, not booleans), duplicate keys
/// refused, serde-saphyr's default budget against alias bombs, and no source snippets.
fn options() -> Options {
    serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
        crop_radius: 0,
    }
}

/// Deserializes the YAML document `text` into `T`; `file` names it in errors.
///
/// Errors: [`ConfigError::Parse`] for YAML syntax, a duplicate key, an unknown field, a wrong
/// type or an unset environment variable, with the line and column of the offending key.
pub fn from_str<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    let mut path = String::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    })
    .map_err(|e| parse_error(text, file, &path, &e))
}

/// Turns a compile-time [`FieldError`] into a [`ConfigError::Invalid`] at the line of its field
/// (or of its deepest ancestor present in `text`).
pub fn locate_error(text: &str, file: &str, e: FieldError) -> ConfigError {
    let (line, _) = Spans::of(text).place(&e.path).unwrap_or((1, 1));
    ConfigError::Invalid {
        file: file.to_string(),
        line,
        path: e.path,
        message: e.message,
    }
}

/// The error of a failed deserialization, placed: serde-saphyr's own location, except inside
/// values serde buffers before deserializing them (internally tagged enums: authenticators),
/// which it can place only as a whole; there the offending key or `${VAR}` reference is looked
/// up under the reported path.
fn parse_error(text: &str, file: &str, path: &str, e: &Error) -> ConfigError {
    let message = sanitize(Wording.format_message(original(e)));
    // serde_path_to_error writes `?` for a key it could not read (a duplicate one).
    let path = match path.trim_end_matches(".?") {
        "" | "?" => ".",
        p => p,
    };
    let reported = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize));
    let spans = || Spans::of(text);
    let buffered = if let Some(field) = quoted(&message, "unknown field `") {
        spans().exact(&format!("{path}.{field}"))
    } else if let Some(var) = message
        .strip_prefix("environment variable ")
        .and_then(|r| r.split(' ').next())
    {
        spans().env_ref(path, var)
    } else {
        None
    };
    let (line, column) = buffered
        .or(reported)
        .or_else(|| spans().place(path))
        .unwrap_or((1, 1));
    ConfigError::Parse {
        file: file.to_string(),
        line,
        column,
        path: path.to_string(),
        message,
    }
}

/// The error an alias or a snippet wraps.
fn original(mut e: &Error) -> &Error {
    while let Error::AliasError { error, .. } | Error::WithSnippet { error, .. } = e {
        e = error;
    }
    e
}

/// The text between `prefix` and the next backtick in `message`.
fn quoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// Control characters (a newline in a key, say) printed as escapes, so one error is one line.
fn sanitize(text: Cow<'_, str>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// serde-saphyr's developer wording, but a duplicate key in serde_yaml's words (which the docs
/// and the broken-config fixtures quote): `duplicate entry with key "k"`.
struct Wording;

impl MessageFormatter for Wording {
    fn format_message<'a>(&self, err: &'a Error) -> Cow<'a, str> {
        match err {
            Error::DuplicateMappingKey { key: Some(k), .. } => {
                Cow::Owned(format!("duplicate entry with key {k:?}"))
            }
            Error::DuplicateMappingKey { key: None, .. } => Cow::Borrowed("duplicate entry"),
            _ => DefaultMessageFormatter.format_message(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use proptest::prelude::*;

    fn err(doc: &str) -> String {
        from_str::<Config>(doc, "c.yaml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_field_names_line_column_and_path() {
        let e = err("version: 1\nupstream:\n  url: http://x\n  urll: y\n");
        assert!(
            e.starts_with("c.yaml:4:3: upstream.urll: unknown field `urll`"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_keys_are_refused_where_they_are() {
        let e = err("version: 1\nidentity:\n  claims:\n    a: x-a\n    a: x-b\n");
        assert!(e.starts_with("c.yaml:5:"), "{e}");
        assert!(
            e.contains("identity.claims: duplicate entry with key \"a\""),
            "{e}"
        );
        let e = err("version: 1\nversion: 1\n");
        assert!(
            e.starts_with("c.yaml:2:") && e.contains("duplicate entry"),
            "{e}"
        );
    }

    #[test]
    fn inside_an_authenticator_the_key_itself_is_placed() {
        let doc = "version: 1\nauthenticators:\n  k:\n    type: api_key\n    from: {header: x}\n    keys: [{name: a, value: \"${KG_SPANS_UNSET}\"}]\n    bogus: 1\n";
        let e = err(doc);
        assert!(e.starts_with("c.yaml:6:"), "{e}");
        assert!(
            e.contains("environment variable KG_SPANS_UNSET is not set"),
            "{e}"
        );
        std::env::set_var("KG_SPANS_UNSET_2", "x");
        let e = err(&doc.replace("KG_SPANS_UNSET", "KG_SPANS_UNSET_2"));
        assert!(
            e.starts_with("c.yaml:7:5: authenticators.k: unknown field `bogus`"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_secret_is_never_printed() {
        let doc = "version: 1\nauthenticators:\n  h:\n    type: hmac_token\n    secret: 918273645546372819\n";
        let e = err(doc);
        assert!(!e.contains("918273645546372819"), "{e}");
        assert!(e.contains("value not shown: it is secret"), "{e}");
        // Nor in a syntax error on the secret's own line.
        let e = err("version: 1\nauthenticators:\n  h:\n    secret: \"s3cr3t-xyz\n");
        assert!(e.starts_with("c.yaml:") && !e.contains("s3cr3t-xyz"), "{e}");
    }

    #[test]
    fn yaml_1_2_booleans_and_syntax_errors() {
        let e = err("version: 1\nroutes: [{name: a, path: /x, auth: anonymous, socketio: yes}]\n");
        assert!(e.contains("routes[0].socketio"), "{e}");
        let e = err("version: 1\nroutes: [\n");
        assert!(e.starts_with("c.yaml:"), "{e}");
    }

    /// Lines of YAML-ish text: keys of the schema, nesting, flow collections, anchors, tags,
    /// quotes and `${` references, in any order.
    fn yamlish() -> impl Strategy<Value = String> {
        let token = proptest::sample::select(vec![
            "version: 1",
            "routes:",
            "- ",
            "  ",
            "{",
            "}",
            "[",
            "]",
            ", ",
            "name: a",
            "path: /x",
            "auth: anonymous",
            "authenticators:",
            "k:",
            "type: api_key",
            "keys: [{name: a, value: b}]",
            "from: {header: x}",
            "\"${KG_NOPE}\"",
            "&a ",
            "*a",
            "<<: *a",
            "!!str ",
            "? ",
            ": ",
            "'q",
            "#c",
            "identity:",
            "claims: {e: x, e: y}",
            "limits: {max_token_bytes: -1}",
            "\t",
            "---",
            "\u{feff}",
            "é",
        ]);
        proptest::collection::vec(proptest::collection::vec(token, 0..6), 0..12).prop_map(|lines| {
            lines
                .iter()
                .map(|l| l.concat())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    proptest! {
        /// Whatever the text, loading returns (never panics), and a failure names the file and a
        /// line within it; placing fields never panics either.
        #[test]
        fn any_text_loads_or_fails_with_a_line(text in yamlish()) {
            let lines = text.lines().count().max(1);
            if let Err(e) = crate::ruleset::load_str(&text, "p.yaml") {
                let e = e.to_string();
                prop_assert!(e.starts_with("p.yaml:"), "{}", e);
                let line: usize = e["p.yaml:".len()..]
                    .split(':')
                    .next()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                prop_assert!((1..=lines + 1).contains(&line), "{} in {} lines", e, lines);
            }
            let spans = Spans::of(&text);
            let _ = spans.place("routes[0].auth[1]");
        }
    }

    #[test]
    fn compile_errors_get_the_line_of_their_field() {
        let doc = "version: 1\nroutes:\n  - {name: a, path: /x}\n  - name: b\n    path: /y\n";
        let e = locate_error(doc, "c.yaml", FieldError::new("routes[1].path", "bad"));
        assert_eq!(e.to_string(), "c.yaml:5: routes[1].path: bad");
        let e = locate_error(doc, "c.yaml", FieldError::new("routes[0].auth", "missing"));
        assert_eq!(e.to_string(), "c.yaml:3: routes[0].auth: missing");
    }
}
