//! Method overrides in form bodies (`SECURITY.md`, "The canonical request"): Rack's
//! `MethodOverride`, Symfony and Laravel, and Express's `method-override` with a `req.body`
//! getter run the handler of the method a POSTed form's `_method` field names. keygate reads
//! such a form on a route that restricts methods (`crate::body`) and decides about the method
//! the form names.
//!
//! Forms are what frameworks parse by default: `application/x-www-form-urlencoded` (WHATWG URL
//! form-urlencoded parsing) and `multipart/*` (RFC 7578, parsed by the `multer` crate). A
//! multipart body keygate cannot read the way a framework would is refused, never guessed at.

use futures_util::FutureExt;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::HeaderMap;

use crate::canonical::{Overrides, OVERRIDE_PARAM};
use crate::reason::Reason;

/// A form body, as its `Content-Type` announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    /// `application/x-www-form-urlencoded`.
    Urlencoded,
    /// `multipart/*` with this boundary (RFC 2046 §5.1.1).
    Multipart(String),
}

/// The form `headers` announce, if any: by `Content-Type`, or a body without one (Rack reads a
/// POST without `Content-Type` as a form).
///
/// Errors: `malformed_request` when a form type is among several `Content-Type` headers (which
/// one a backend reads is its choice); `malformed_body` for a form with a `Content-Encoding`
/// other than `identity` (body-parser inflates gzip and deflate bodies before reading them) or
/// a multipart type without a usable boundary.
pub(crate) fn kind(headers: &HeaderMap) -> Result<Option<Form>, Reason> {
    let types = headers.get_all(CONTENT_TYPE);
    let form = if types.iter().next().is_none() {
        has_body(headers).then_some(Form::Urlencoded)
    } else {
        let mut forms = types.iter().map(form_of).filter(|f| !matches!(f, Ok(None)));
        let form = forms.next().transpose()?.flatten();
        if form.is_some() && types.iter().count() > 1 {
            return Err(Reason::MalformedRequest);
        }
        form
    };
    let Some(form) = form else {
        return Ok(None);
    };
    let mut encodings = headers.get_all(CONTENT_ENCODING).iter();
    if !encodings.all(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity")) {
        return Err(Reason::MalformedBody);
    }
    Ok(Some(form))
}

/// Whether the framing headers announce a body (RFC 9112 §6.3): a `Transfer-Encoding`, or a
/// `Content-Length` other than 0.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .any(|v| {
                v.as_bytes()
                    .iter()
                    .any(|b| !matches!(b, b'0' | b' ' | b','))
            })
}

/// The form one `Content-Type` value announces, if any. Any of its tokens (split at `;`, `,`
/// and whitespace) naming a form type counts: PHP cuts the type at the first of these, other
/// servers at `;` only.
fn form_of(value: &http::HeaderValue) -> Result<Option<Form>, Reason> {
    let value = value.to_str().map_err(|_| Reason::MalformedRequest)?;
    let tokens = || value.split([';', ',', ' ', '\t']).map(str::trim);
    if tokens().any(|t| t.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
        return Ok(Some(Form::Urlencoded));
    }
    // Rack reads any `multipart/...` with a boundary.
    if tokens().any(|t| t.len() >= 10 && t[..10].eq_ignore_ascii_case("multipart/")) {
        let parsed: mime::Mime = value.parse().map_err(|_| Reason::MalformedBody)?;
        let multipart = parsed.type_() == mime::MULTIPART;
        let boundary = parsed.get_param(mime::BOUNDARY).filter(|_| multipart);
        let boundary = boundary.ok_or(Reason::MalformedBody)?;
        return Ok(Some(Form::Multipart(boundary.as_str().to_string())));
    }
    Ok(None)
}

/// Notes every `_method` field (name in any case) of the form `bytes` into `found`.
///
/// Errors: `malformed_request` for an override that is not a method or disagrees with another
/// (`Overrides::note`); `malformed_body` for a multipart body that does not parse, a `_method`
/// part that is not UTF-8 text, a part name in an encoding some parser decodes and another
/// does not (`plain_dispositions`), or a body that mentions `_method` (or `%5Fmethod`, RFC 2231's
/// encoded name) more often than it has parts keygate read by that name (a part name another
/// parser could read differently, or the word in a part's content).
pub(crate) fn note_overrides(
    form: &Form,
    bytes: &[u8],
    found: &mut Overrides,
) -> Result<(), Reason> {
    match form {
        Form::Urlencoded => found.note_form(bytes),
        Form::Multipart(boundary) => {
            if !plain_dispositions(bytes) {
                return Err(Reason::MalformedBody);
            }
            let read = multipart_overrides(boundary, bytes)?;
            let mentions =
                count_ci(bytes, OVERRIDE_PARAM.as_bytes()) + count_ci(bytes, b"%5fmethod");
            if mentions != read.len() {
                return Err(Reason::MalformedBody);
            }
            read.iter().try_for_each(|v| found.note(v.as_bytes()))
        }
    }
}

/// The method a POSTed body with this `Content-Type` names in its `_method` fields, as keygate
/// reads it (`Ok(None)`: not a form, or no such field). For fuzzing and property tests.
///
/// Errors: as `kind` and `note_overrides`.
pub fn method_override(content_type: &str, body: &[u8]) -> Result<Option<http::Method>, Reason> {
    let value = http::HeaderValue::from_str(content_type).map_err(|_| Reason::MalformedRequest)?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, value);
    let Some(form) = kind(&headers)? else {
        return Ok(None);
    };
    let mut found = Overrides::default();
    note_overrides(&form, body, &mut found)?;
    Ok(found.0)
}

/// The values of the parts named `_method` (any case); every other part is skipped.
fn multipart_overrides(boundary: &str, bytes: &[u8]) -> Result<Vec<String>, Reason> {
    let body = bytes::Bytes::copy_from_slice(bytes);
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut values = Vec::new();
    // The whole body is in memory: every future is ready at once.
    let all = async {
        while let Some(field) = parts
            .next_field()
            .await
            .map_err(|_| Reason::MalformedBody)?
        {
            let named = field
                .name()
                .is_some_and(|n| n.eq_ignore_ascii_case(OVERRIDE_PARAM));
            if named {
                let text = field.text().await.map_err(|_| Reason::MalformedBody)?;
                values.push(text);
            }
        }
        Ok::<_, Reason>(())
    };
    all.now_or_never().unwrap_or(Err(Reason::MalformedBody))?;
    Ok(values)
}

/// Whether every `Content-Disposition` line of a multipart body names its part plainly: no
/// RFC 2231 extended or continued parameter (`name*=utf-8''%5Fmethod`, `name*0="_me"`, which
/// Werkzeug and busboy decode), no quoted-pair (`"_meth\od"`), no RFC 2047 encoded word, and no
/// folded continuation line. Parsers disagree on all of these, so none is read for a name.
fn plain_dispositions(bytes: &[u8]) -> bool {
    let mut lines = bytes.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if count_ci(line, b"content-disposition") == 0 {
            continue;
        }
        let encoded = line.iter().any(|&b| b == b'*' || b == b'\\') || count_ci(line, b"=?") > 0;
        let folded = lines
            .peek()
            .is_some_and(|next| matches!(next.first(), Some(b' ' | b'\t')));
        if encoded || folded {
            return false;
        }
    }
    true
}

/// How often `needle` (ASCII) occurs in `haystack`, ignoring ASCII case.
fn count_ci(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| w.eq_ignore_ascii_case(needle))
        .count()
}

#[cfg(test)]
mod tests;
