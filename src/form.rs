//! Method overrides in form bodies (`SECURITY.md`, "The canonical request"). Rack's
//! `MethodOverride`, Symfony/Laravel and Express's `method-override` with a `req.body` getter
//! run the handler of the method that a POSTed form's `_method` field names. On a route that
//! restricts methods, such a form could reach a handler the route does not allow.
//!
//! keygate does not parse the form to find the field: frameworks disagree too much. Werkzeug
//! decodes RFC 2231 names and ends part headers at a bare LF; body-parser drops a byte-order
//! mark; `qs` reads `_method[]`; PHP reads `.method` and `[method` as `_method`. A parser would
//! read one body one way while the backend read it another. Instead, [`Scanner`] checks the body
//! as it streams to the backend. A body that could name a method in any of these ways is cut
//! off before the bytes that would complete the name reach the backend, and the client gets
//! 400 `malformed_body`. The frameworks apply an override only after parsing the whole body,
//! so a cut-off body is never acted on. No size limit applies, and nothing is buffered.

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::HeaderMap;

use crate::reason::Reason;

/// Whether `headers` announce a body that a framework could read as a form: a form type among
/// any tokens of `Content-Type`, or a body without a `Content-Type` at all (Rack reads a POST
/// without one as a form).
///
/// Errors: `malformed_body` for a form with a `Content-Encoding` other than `identity`
/// (body-parser inflates gzip and deflate bodies before reading them).
pub(crate) fn is_form(headers: &HeaderMap) -> Result<bool, Reason> {
    let mut types = headers.get_all(CONTENT_TYPE).iter().peekable();
    let form = if types.peek().is_none() {
        has_body(headers)
    } else {
        types.any(|v| v.as_bytes().split(|b| b"; ,\t".contains(b)).any(form_type))
    };
    let mut encodings = headers.get_all(CONTENT_ENCODING).iter();
    if form && !encodings.all(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity")) {
        return Err(Reason::MalformedBody);
    }
    Ok(form)
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

/// The bytes of the word that names an override field.
const WORD: &[u8; 6] = b"method";
const DISPOSITION: &[u8; 19] = b"content-disposition";

/// Checks a form body as it streams, one chunk at a time, and stops at the first byte that
/// would complete one of these in the text the frameworks read (percent-decoded, NUL bytes
/// dropped, any case):
/// - the word `method` at the start of a name part. It must not follow a letter or digit, so
///   `_method`, `.method`, `[method`, `+method`, `_method[]` and `payment_method` all count,
///   and `paymentMethod` does not;
/// - in a `Content-Disposition` line (folded lines included), an RFC 2231 extended or continued
///   parameter (`*`) or a quoted-pair (`\`), which parsers decode differently.
///
/// State is carried across chunks, so a word split between chunks is found.
#[derive(Debug, Default)]
pub struct Scanner {
    /// A `%` and up to one hex digit waiting for the rest of the escape.
    escape: Option<Option<u8>>,
    /// The last decoded byte (for "does not follow a letter or digit").
    last: u8,
    /// How much of `WORD` the decoded text ends with, when it started at a name start.
    word: usize,
    /// How much of `DISPOSITION` the decoded text ends with.
    disposition: usize,
    /// Inside a `Content-Disposition` line: 0 no, 1 yes, 2 just after its LF (folding?).
    in_disposition: u8,
}

impl Scanner {
    /// Feeds the next chunk. Returns how many of its bytes may be forwarded: `chunk.len()`
    /// when none completes what the scanner refuses, otherwise the bytes before that one (the
    /// caller refuses the request and forwards nothing more).
    pub fn feed(&mut self, chunk: &[u8]) -> usize {
        for (i, &raw) in chunk.iter().enumerate() {
            let decoded = match self.escape.take() {
                None if raw == b'%' => {
                    self.escape = Some(None);
                    None
                }
                None => Some(raw),
                Some(None) if raw.is_ascii_hexdigit() => {
                    self.escape = Some(Some(raw));
                    None
                }
                Some(Some(h)) if raw.is_ascii_hexdigit() => Some(hex(h) << 4 | hex(raw)),
                Some(pending) => {
                    // Not an escape after all: `%` (and its digit) stand for themselves.
                    if !self.step(b'%') || pending.is_some_and(|h| !self.step(h)) {
                        return i;
                    }
                    if raw == b'%' {
                        self.escape = Some(None);
                        None
                    } else {
                        Some(raw)
                    }
                }
            };
            if decoded.is_some_and(|b| b != 0 && !self.step(b)) {
                return i;
            }
        }
        chunk.len()
    }

    /// One decoded byte; `false` when it completes what is refused.
    fn step(&mut self, b: u8) -> bool {
        let lower = b.to_ascii_lowercase();
        // The override word, at a name start.
        self.word = match self.word {
            0 if lower == WORD[0] && !self.last.is_ascii_alphanumeric() => 1,
            n if n > 0 && lower == WORD[n] => n + 1,
            _ if lower == WORD[0] && !self.last.is_ascii_alphanumeric() => 1,
            _ => 0,
        };
        if self.word == WORD.len() {
            return false;
        }
        // Content-Disposition lines.
        if self.in_disposition == 2 {
            self.in_disposition = u8::from(b == b' ' || b == b'\t');
        }
        if self.in_disposition == 1 && (b == b'*' || b == b'\\') {
            return false;
        }
        if b == b'\n' && self.in_disposition == 1 {
            self.in_disposition = 2;
        }
        self.disposition = match self.disposition {
            n if lower == DISPOSITION[n] => n + 1,
            _ => usize::from(lower == DISPOSITION[0]),
        };
        if self.disposition == DISPOSITION.len() {
            self.disposition = 0;
            self.in_disposition = 1;
        }
        self.last = lower;
        true
    }
}

/// The value of an ASCII hex digit.
fn hex(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        _ => (d | 0x20) - b'a' + 10,
    }
}

/// Whether [`Scanner`] refuses `body` (stops before its end), fed in one chunk. For fuzzing
/// and property tests.
pub fn refuses(body: &[u8]) -> bool {
    Scanner::default().feed(body) < body.len()
}

#[cfg(test)]
mod tests;
