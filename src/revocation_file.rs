//! `revocations.file`: a YAML list of revocation entries (`docs/config.md`, "Sessions and
//! revocation"), each one a [`Revocation`]:
//!
//! ```yaml
//! - { sub: user-1 }
//! - { sub: user-2, issued_before: "2026-12-07T10:00:00Z" }
//! - { jti: "customer-42-1733565000" }
//! - { credential: "doka_server/billing", expires_at: "2026-12-08T00:00:00Z" }
//! ```
//!
//! An empty file (or one holding only comments, or `[]`) revokes nothing. Errors name the file
//! and line and say what is wrong, never more of the file than a field name: the file is
//! checked whole, and one bad entry refuses all of it (the caller keeps the list in force).

use std::path::Path;

use crate::revocation::Revocation;

/// Reads and checks `path`: its entries, or `file:line: problem`.
pub(crate) fn load(path: &Path) -> Result<Vec<Revocation>, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    parse(&text, &file)
}

/// Parses and checks the text of a revocations file (`file` names it in errors).
pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<Revocation>, String> {
    // Nothing but comments and blank lines: no entries (an empty YAML document).
    let empty = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    let entries: Option<Vec<Revocation>> = if empty {
        None
    } else {
        crate::config::yaml::from_str(text, file)
            .map_err(|e| format!("{e} (expected a list of revocation entries)"))?
    };
    let entries = entries.unwrap_or_default();
    for (i, e) in entries.iter().enumerate() {
        e.validate()
            .map_err(|m| format!("{file}:{}: entry {}: {m}", entry_line(text, i), i + 1))?;
    }
    Ok(entries)
}

/// The line of the `i`-th item of a block sequence at column 0 (1 when it cannot tell, e.g. in
/// a flow sequence).
fn entry_line(text: &str, i: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with('-'))
        .nth(i)
        .map_or(1, |(n, _)| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Revocation> {
        let name = "[a-z0-9_/:.-]{1,12}";
        let instant = prop::option::of(0i64..4_000_000_000);
        (
            prop::option::of(name),
            instant.clone(),
            prop::option::of(name),
            prop::option::of(name),
            instant,
        )
            .prop_map(
                |(sub, issued_before, jti, credential, expires_at)| Revocation {
                    issued_before: issued_before.filter(|_| sub.is_some()),
                    sub,
                    jti,
                    credential,
                    expires_at,
                },
            )
            .prop_filter("a valid entry", |e| e.validate().is_ok())
    }

    proptest! {
        /// Any list of valid entries, written as YAML, reads back the same; any text at all
        /// gives entries or an error naming the file, never a panic.
        #[test]
        fn valid_entries_round_trip_and_any_text_is_an_answer(
            entries in prop::collection::vec(entry(), 0..8),
            junk in "\\PC{0,200}",
        ) {
            // JSON is YAML: the list as a flow sequence of flow mappings.
            let text = serde_json::to_string(&entries).unwrap();
            prop_assert_eq!(parse(&text, "r.yaml").unwrap(), entries);
            if let Err(e) = parse(&junk, "r.yaml") {
                prop_assert!(e.starts_with("r.yaml:"), "{}", e);
            }
        }
    }

    #[test]
    fn entries_of_every_kind_and_empty_files() {
        let text = "# revoked\n- { sub: user-1 }\n- sub: user-2\n  issued_before: \"2026-12-07T10:00:00Z\"\n- { jti: j-1 }\n- { credential: doka_server/billing, expires_at: \"2026-12-08T00:00:00Z\" }\n";
        let e = parse(text, "r.yaml").unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].sub.as_deref(), Some("user-1"));
        assert!(e[1].issued_before.is_some() && e[3].expires_at.is_some());
        for empty in ["", "# nothing revoked\n", "[]\n"] {
            assert_eq!(parse(empty, "r.yaml").unwrap(), vec![], "{empty:?}");
        }
    }

    #[test]
    fn errors_name_file_line_and_problem_without_values() {
        let bad_entry = "- { sub: user-1 }\n- { issued_before: \"2026-12-07T10:00:00Z\" }\n";
        let e = parse(bad_entry, "r.yaml").unwrap_err();
        assert!(e.starts_with("r.yaml:2: entry 2: "), "{e}");
        let unknown = "- { sub: user-1 }\n- { user: secret-value }\n";
        let e = parse(unknown, "r.yaml").unwrap_err();
        assert!(e.starts_with("r.yaml:2:"), "{e}");
        assert!(
            e.contains("unknown field `user`") && !e.contains("secret-value"),
            "{e}"
        );
        let e = parse("- { sub: a, expires_at: tomorrow }\n", "r.yaml").unwrap_err();
        assert!(e.starts_with("r.yaml:1:") && e.contains("RFC 3339"), "{e}");
        let e = parse("sub: user-1\n", "r.yaml").unwrap_err();
        assert!(e.contains("expected a list"), "{e}");
    }
}
