//! Method overrides in request bodies (`SECURITY.md`, "The canonical request"). Some
//! frameworks run the handler of whatever method a POSTed body's `_method` field names:
//! Rack's `MethodOverride`, Symfony/Laravel (forms, and JSON input in Laravel), and Express's
//! `method-override` with a `req.body` getter. On a route that restricts methods, such a body
//! could reach a handler the route does not allow.
//!
//! keygate does not parse the body to find the field, because frameworks disagree on how to
//! read it. Werkzeug decodes RFC 2231 names, ends part headers at a bare LF and strips Unicode
//! whitespace from `Content-Type`; body-parser drops a byte-order mark; `qs` reads `_method[]`;
//! PHP reads `.method` and `[method` as `_method`; JSON spells `_` as `\u005f`. A parser would
//! read one body one way while the backend read it another.
//!
//! Instead, [`Scanner`] checks the body as it streams to the backend and cuts it off before
//! the bytes that would let a framework read the field. The client gets 400 `malformed_body`.
//! Frameworks apply an override only after parsing the whole body, so a cut-off body is never
//! acted on. No size limit applies and nothing is buffered.

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue};

use crate::reason::Reason;

/// What a framework could read a POST body as, going by its headers, when it could carry an
/// override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `application/json` or another `json` type (Laravel's JSON input, `express.json()`).
    Json,
    /// A body without `Content-Type` (Rack reads it as a form).
    Untyped,
    /// A `Content-Type` that is empty or not a clean `type/subtype` (Rack reads an empty one
    /// as none; Werkzeug strips Unicode whitespace around it).
    Unclean,
    /// `application/x-www-form-urlencoded` or any `multipart/...`, in any token of
    /// `Content-Type` (PHP cuts the type at `,` or a space).
    Form,
}

/// What `headers` say the body is, when a framework could read an override from it (`None`:
/// no body, or a clean type that is neither a form nor JSON).
///
/// Errors: `malformed_body` for such a body with a `Content-Encoding` other than `identity`
/// (body-parser inflates gzip and deflate bodies before reading them), or with a `charset` the
/// scan does not read (`charset_read`).
pub(crate) fn kind(headers: &HeaderMap) -> Result<Option<Kind>, Reason> {
    let mut types = headers.get_all(CONTENT_TYPE).iter().peekable();
    let kind = if types.peek().is_none() {
        has_body(headers).then_some(Kind::Untyped)
    } else {
        types.map(kind_of).max().flatten()
    };
    if kind.is_none() {
        return Ok(None);
    }
    let plain = uncompressed(headers);
    let charsets_read = headers.get_all(CONTENT_TYPE).iter().all(charset_read);
    if !plain || !charsets_read {
        return Err(Reason::MalformedBody);
    }
    Ok(kind)
}

/// The kind of body one `Content-Type` value announces.
fn kind_of(value: &HeaderValue) -> Option<Kind> {
    let v = value.as_bytes();
    if v.split(|b| b"; ,\t".contains(b)).any(form_type) {
        return Some(Kind::Form);
    }
    let media = v.split(|&b| b == b';').next().unwrap_or_default();
    let clean = v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        && media.trim_ascii().split(|&b| b == b'/').count() == 2
        && media.trim_ascii().split(|&b| b == b'/').all(is_token);
    if !clean {
        return Some(Kind::Unclean);
    }
    let json = media.windows(4).any(|w| w.eq_ignore_ascii_case(b"json"));
    json.then_some(Kind::Json)
}

/// Whether some framework could read the body as multipart: any `Content-Type` names
/// `multipart` anywhere, in any case (PHP, Rack and Werkzeug each find the type differently).
pub(crate) fn multipart(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(CONTENT_TYPE).iter();
    types.any(|v| {
        v.as_bytes()
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"multipart"))
    })
}

/// The multipart boundary as PHP reads it from the only `Content-Type` (`main/rfc1867.c`): after
/// the first `boundary` (any case if not in lower case) and the next `=`, up to a closing `"`
/// if quoted, else up to `,` or `;`, nothing trimmed. `None` with more than one `Content-Type`
/// or none PHP can read (the scan then takes the whole body for preamble).
pub(crate) fn php_boundary(headers: &HeaderMap) -> Option<Vec<u8>> {
    let mut types = headers.get_all(CONTENT_TYPE).iter();
    let (Some(ct), None) = (types.next(), types.next()) else {
        return None;
    };
    let ct = ct.as_bytes();
    let find = |exact: bool| {
        ct.windows(8).position(|w| {
            if exact {
                w == b"boundary"
            } else {
                w.eq_ignore_ascii_case(b"boundary")
            }
        })
    };
    let at = find(true).or_else(|| find(false))?;
    let rest = &ct[at..];
    let value = &rest[rest.iter().position(|&b| b == b'=')? + 1..];
    let boundary = match value.strip_prefix(b"\"") {
        Some(quoted) => &quoted[..quoted.iter().position(|&b| b == b'"')?],
        None => value
            .split(|&b| b == b',' || b == b';')
            .next()
            .unwrap_or_default(),
    };
    Some(boundary.to_vec())
}

/// Whether the body is sent as it is: no `Content-Encoding` other than `identity` (RFC 9110
/// §8.4). A backend would read a compressed body only after inflating it.
pub(crate) fn uncompressed(headers: &HeaderMap) -> bool {
    let mut encodings = headers.get_all(CONTENT_ENCODING).iter();
    encodings.all(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
}

/// Whether the scan reads text in the `charset` of a `Content-Type` value (none given: the
/// framework's default, UTF-8). ASCII-compatible charsets and UTF-16/32 (whose ASCII letters
/// the scan reads between the NUL bytes) are; UTF-7 (`+AF8-` is `_`, which body-parser's
/// iconv-lite decodes) and anything unknown are not.
fn charset_read(value: &HeaderValue) -> bool {
    const READ: [&[u8]; 13] = [
        b"utf-8",
        b"utf8",
        b"us-ascii",
        b"ascii",
        b"iso-8859-1",
        b"latin1",
        b"windows-1252",
        b"utf-16",
        b"utf-16le",
        b"utf-16be",
        b"utf-32",
        b"utf-32le",
        b"utf-32be",
    ];
    value.as_bytes().split(|&b| b == b';').skip(1).all(|param| {
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            return true;
        };
        let (name, v) = (&param[..eq], &param[eq + 1..]);
        if !name.trim_ascii().eq_ignore_ascii_case(b"charset") {
            return true;
        }
        let v = v.trim_ascii();
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        READ.iter().any(|c| c.eq_ignore_ascii_case(v))
    })
}

/// An RFC 9110 §5.6.2 token.
fn is_token(t: &[u8]) -> bool {
    !t.is_empty()
        && t.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A media type that some framework parses as a form: `application/x-www-form-urlencoded`, or
/// any `multipart/...` (Rack reads every multipart type that has a boundary). Any case.
fn form_type(token: &[u8]) -> bool {
    token.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
        || (token.len() >= 10 && token[..10].eq_ignore_ascii_case(b"multipart/"))
}

/// Whether the framing headers announce a body (RFC 9112 §6.3): a `Transfer-Encoding`, or a
/// `Content-Length` other than 0.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers.get_all(CONTENT_LENGTH).iter().any(|v| {
            v.as_bytes()
                .iter()
                .any(|b| !matches!(b, b'0' | b' ' | b','))
        })
}

mod preamble;
mod scanner;

pub use scanner::{refuses, Scanner};

#[cfg(test)]
mod tests;
