//! Request-target hygiene: what keygate refuses to interpret, and the key it matches routes on
//! (`docs/config.md`, "Route matching").
//!
//! keygate never guesses how a backend normalises a path, so anything whose meaning depends on
//! that is refused as `malformed_path` (400): dot-segments (RFC 3986 §5.2.4), empty segments
//! (`//`), `\`, `;` (path parameters), `#`, control characters, invalid UTF-8, bad
//! percent-encoding, and the encoded forms of `/`, `\`, NUL, `;` and `%` (double encoding).
//! Everything else is percent-decoded for matching, so `/wid%67et` is `/widget`; the backend
//! receives the original bytes.
//!
//! Matching is case-insensitive in ASCII only and ignores one trailing `/`, as Express's default
//! router does (and as JavaScript's case-insensitive regexps do, no non-ASCII character folds to
//! an ASCII one): `/V1/Users/alice/` is matched like `/v1/users/alice`, while parameter values
//! keep their case.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::reason::Reason;

/// A path that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPath<'a> {
    /// Percent-decoded, as sent otherwise (case kept, trailing `/` kept).
    pub decoded: Cow<'a, str>,
}

impl CheckedPath<'_> {
    /// The route-matching key: ASCII-lowercased, one trailing `/` removed (except for `/`).
    /// Byte offsets are those of [`Self::trimmed`], so a slice of the key maps back to it.
    pub fn key(&self) -> Cow<'_, str> {
        let t = self.trimmed();
        if t.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(t.to_ascii_lowercase())
        } else {
            Cow::Borrowed(t)
        }
    }

    /// The decoded path with one trailing `/` removed (except for `/` itself).
    pub fn trimmed(&self) -> &str {
        let d: &str = &self.decoded;
        match d.strip_suffix('/') {
            Some(t) if !t.is_empty() => t,
            _ => d,
        }
    }
}

/// Checks a raw request path (without the query) and returns it percent-decoded.
///
/// Errors: `Reason::MalformedPath` for every form listed in the module docs.
pub fn check(raw: &str) -> Result<CheckedPath<'_>, Reason> {
    if !raw.starts_with('/') || raw.contains(['\\', ';', '#']) {
        return Err(Reason::MalformedPath);
    }
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // Two hex digits exactly (`from_str_radix` alone would take a sign: `%+8`).
            let byte = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match byte {
                Some(b'/' | b'\\' | 0 | b';' | b'%') | None => return Err(Reason::MalformedPath),
                Some(_) => i += 3,
            }
        } else {
            i += 1;
        }
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Reason::MalformedPath)?;
    if decoded.bytes().any(|c| c < 0x20 || c == 0x7f) || decoded.contains('#') {
        return Err(Reason::MalformedPath);
    }
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (n, s) in segments.iter().enumerate() {
        if *s == "." || *s == ".." || (s.is_empty() && n != last) {
            return Err(Reason::MalformedPath);
        }
    }
    Ok(CheckedPath { decoded })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refused_forms() {
        for bad in [
            "/a/../b",
            "/a/%2e%2E/b",
            "/a/.",
            "/a%2Fb",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/a;b",
            "/a%3Bb",
            "/a%3bb",
            "/a%25b",
            "/a%252e%252e/b",
            "/a%00",
            "/a%0d%0a",
            "/a#b",
            "/a%23b",
            "a",
            "",
            "/%ff",
            "/a%zz",
            "/a%2",
            "/%+8",
            "/%-1",
            "/% 1",
            "//a",
            "/a//b",
            "/a//",
            "//",
        ] {
            assert_eq!(check(bad), Err(Reason::MalformedPath), "{bad}");
        }
    }

    #[test]
    fn keys_fold_ascii_case_and_one_trailing_slash() {
        let p = check("/V1/Users/Al%69ce/").unwrap();
        assert_eq!(p.decoded, "/V1/Users/Alice/");
        assert_eq!(p.trimmed(), "/V1/Users/Alice");
        assert_eq!(p.key(), "/v1/users/alice");
        assert_eq!(check("/").unwrap().key(), "/");
        assert_eq!(check("/a/b%20c").unwrap().key(), "/a/b c");
        // Non-ASCII letters keep their case (no folding to ASCII either).
        assert_eq!(check("/%C4%B0").unwrap().key(), "/\u{130}");
    }

    proptest! {
        /// Whatever the input, an accepted path has no segment a backend could normalise away.
        #[test]
        fn accepted_paths_have_no_ambiguous_segments(raw in "(/[a-zA-Z0-9%.;#\\\\]{0,6}){1,5}/?") {
            if let Ok(p) = check(&raw) {
                let segs: Vec<&str> = p.decoded.split('/').skip(1).collect();
                for (n, s) in segs.iter().enumerate() {
                    prop_assert!(*s != "." && *s != "..");
                    prop_assert!(!s.is_empty() || n == segs.len() - 1);
                    prop_assert!(!s.contains(['%', ';', '\\', '#']));
                }
                // No `%` survives decoding, so nothing can be decoded twice.
                prop_assert!(!p.decoded.contains('%'));
                // The key is the trimmed path, lowercased in place.
                prop_assert_eq!(p.key().len(), p.trimmed().len());
            }
        }
    }
}
