//! The request the backend will act on, derived from the exact bytes it will receive, before
//! anything is decided (`SECURITY.md`, "The canonical request"). Every door derives one
//! [`Canonical`] and decides about it alone; what cannot be derived one way only is refused.
//!
//! - The target: origin-form (`/path?query`), or an absolute-form `http(s)://authority/path`
//!   (the backend reads its path). Anything else (`admin/users`, `*`, authority-form, a
//!   fragment, non-ASCII bytes, userinfo) is `malformed_path`: an HTTP parser that "fixes" such
//!   a target would decide about one path while the backend acts on another.
//! - The method, and every method override a framework could apply instead: the
//!   `X-HTTP-Method-Override` family in every spelling a server reads as one (`_`, `.` and any
//!   other non-alphanumeric character read as `-`), and the `_method` query parameter (Express
//!   `method-override`, Laravel, Symfony). Overrides that disagree, or are not one token, are
//!   `malformed_request`; the route must allow the one named (`crate::decide`).
//! - On the forward-auth listener the method and target come from the one front proxy
//!   configured (`forward_auth.front`): its header family only, each exactly once.

use std::borrow::Cow;

use http::{HeaderMap, Method, Version};
use pingora::http::RequestHeader;

use crate::config::Front;
use crate::identity::spelling_of;
use crate::reason::Reason;

/// Header names through which frameworks let a client override the method (Express's
/// `method-override`, Rails/Rack, Symfony, Google APIs), canonical spelling.
const OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query parameter (and form field) frameworks read as a method override.
pub(crate) const OVERRIDE_PARAM: &str = "_method";

/// The request a backend will act on.
#[derive(Debug)]
pub(crate) struct Canonical<'a> {
    /// The method on the wire (before any override).
    pub(crate) method: Method,
    /// The method an override names, if any (every override found agrees on it).
    pub(crate) overridden: Option<Method>,
    /// The path of the target, as sent (still percent-encoded; `crate::path::check` decides
    /// whether keygate can interpret it).
    pub(crate) path: Cow<'a, str>,
    /// The query, as sent, without `?`.
    pub(crate) query: Option<Cow<'a, str>>,
    /// The headers the decision reads (identity headers already stripped by the door).
    pub(crate) headers: &'a HeaderMap,
    /// The HTTP version on the wire.
    pub(crate) version: Version,
}

impl<'a> Canonical<'a> {
    /// The request arriving at the proxy listener: `req` as pingora parsed it, and its raw
    /// target (what pingora forwards byte for byte).
    ///
    /// Errors: `malformed_path` for a target that is not origin- or absolute-form;
    /// `malformed_request` for method overrides that disagree or are not one token, and for an
    /// HTTP/1.1 request without `Host` or any request with more than one.
    pub(crate) fn proxied(req: &'a RequestHeader) -> Result<Canonical<'a>, Reason> {
        // RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or any with two, is a 400; which
        // host a backend would read from two is its choice.
        let hosts = req.headers.get_all(http::header::HOST).iter().count();
        if hosts > 1 || (hosts == 0 && req.version >= Version::HTTP_11) {
            return Err(Reason::MalformedRequest);
        }
        let (path, query) = split_target(req.raw_path()).ok_or(Reason::MalformedPath)?;
        Canonical::build(req.method.clone(), path.into(), query.map(Into::into), req)
    }

    /// The original request a forward-auth request from `front` stands for.
    ///
    /// Errors: `malformed_request` when a header of `front`'s family is missing, repeated or is
    /// not a method / request target; `malformed_path` for an envoy target that is neither form.
    pub(crate) fn forwarded(front: Front, req: &'a RequestHeader) -> Result<Canonical<'a>, Reason> {
        let (method_header, uri_header) = match front {
            Front::Envoy => {
                let (path, query) = split_target(req.raw_path()).ok_or(Reason::MalformedPath)?;
                return Canonical::build(
                    req.method.clone(),
                    path.into(),
                    query.map(Into::into),
                    req,
                );
            }
            Front::Nginx => ("x-original-method", "x-original-uri"),
            Front::Traefik => ("x-forwarded-method", "x-forwarded-uri"),
        };
        let method = exactly_one(&req.headers, method_header)?;
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| Reason::MalformedRequest)?;
        let target = exactly_one(&req.headers, uri_header)?;
        let (path, query) = split_target(target.as_bytes()).ok_or(Reason::MalformedRequest)?;
        let (path, query) = (path.to_string(), query.map(str::to_string));
        if front == Front::Traefik && req.headers.get_all("x-forwarded-host").iter().count() > 1 {
            return Err(Reason::MalformedRequest);
        }
        Canonical::build(method, path.into(), query.map(Into::into), req)
    }

    fn build(
        method: Method,
        path: Cow<'a, str>,
        query: Option<Cow<'a, str>>,
        req: &'a RequestHeader,
    ) -> Result<Canonical<'a>, Reason> {
        let overridden = overrides(&req.headers, query.as_deref())?;
        Ok(Canonical {
            method,
            overridden,
            path,
            query,
            headers: &req.headers,
            version: req.version,
        })
    }

    /// Whether it is a real RFC 6455 opening handshake (`crate::websocket::is_handshake`).
    pub(crate) fn is_upgrade(&self) -> bool {
        crate::websocket::is_handshake(self.version, &self.method, self.headers)
    }
}

/// The value of the one header `name` (any case); `malformed_request` if absent, repeated, or
/// not visible ASCII.
fn exactly_one<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Reason> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => v
            .to_str()
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or(Reason::MalformedRequest),
        _ => Err(Reason::MalformedRequest),
    }
}

/// Splits a raw request target into the path and query the backend will read; `None` for a
/// target that is not origin-form or an absolute-form `http`/`https` URI with a path.
pub(crate) fn split_target(raw: &[u8]) -> Option<(&str, Option<&str>)> {
    let raw = std::str::from_utf8(raw).ok()?;
    if !raw.bytes().all(|b| b.is_ascii_graphic()) || raw.contains('#') {
        return None;
    }
    let origin_form = if raw.starts_with('/') {
        raw
    } else {
        let scheme_len = ["http://", "https://"]
            .iter()
            .find(|s| raw.len() >= s.len() && raw[..s.len()].eq_ignore_ascii_case(s))?
            .len();
        let rest = &raw[scheme_len..];
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        // RFC 9110 §4.2.4: no userinfo in http(s) URIs; an empty authority is no URI at all.
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        rest[end..].starts_with('/').then_some(&rest[end..])?
    };
    Some(match origin_form.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (origin_form, None),
    })
}

/// Every method override in `headers` and `query`; the one method they name, if any.
fn overrides(headers: &HeaderMap, query: Option<&str>) -> Result<Option<Method>, Reason> {
    let mut found = Overrides::default();
    for (name, value) in headers {
        let n = name.as_str().as_bytes();
        if OVERRIDE_HEADERS
            .iter()
            .any(|o| spelling_of(n, o.as_bytes()))
        {
            found.note(value.as_bytes())?;
        }
    }
    if let Some(q) = query {
        found.note_form(q.as_bytes())?;
    }
    Ok(found.0)
}

/// Whether a query parameter name reads as `_method` to some framework, in any case: as it is;
/// as an array (`qs` and PHP read `_method[]` and `_method[0]`); as qs's first key (`[_method]`);
/// or mangled by PHP, which strips
/// leading spaces and turns `.`, a space and an unclosed `[` into `_` (`.method`, `[method`).
/// A byte-order mark before it is ignored (body-parser drops one).
fn names_override(name: &str) -> bool {
    // PHP reads names as C strings: a NUL ends one.
    let name = name.split('\0').next().unwrap_or_default();
    let name = name.trim_start_matches([' ', '\u{feff}']);
    // qs reads a name that starts with a bracket by its first bracketed key (`[_method]`,
    // `[_method][]`); PHP ignores such a name.
    let name = match name.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((first, _)) => first,
        None => name,
    };
    let name = match name.find('[') {
        Some(i) if i > 0 && name[i..].contains(']') => &name[..i],
        _ => name,
    };
    let mut chars = name
        .chars()
        .map(|c| if matches!(c, '.' | ' ' | '[') { '_' } else { c });
    let mangled: String = chars.by_ref().take(OVERRIDE_PARAM.len() + 1).collect();
    mangled.eq_ignore_ascii_case(OVERRIDE_PARAM)
}

/// The method overrides found so far, in any place (headers, query, body): every one must name
/// the same method.
#[derive(Debug, Default)]
pub(crate) struct Overrides(pub(crate) Option<Method>);

impl Overrides {
    /// Notes one override value (surrounding whitespace ignored, any case, as Express's
    /// `toUpperCase()` and Rack's `upcase` read it).
    ///
    /// Errors: `malformed_request` when it is not a method token or names another method than
    /// one noted before.
    pub(crate) fn note(&mut self, value: &[u8]) -> Result<(), Reason> {
        let v = value.trim_ascii().to_ascii_uppercase();
        let m = Method::from_bytes(&v).map_err(|_| Reason::MalformedRequest)?;
        match &self.0 {
            Some(f) if *f != m => Err(Reason::MalformedRequest),
            _ => {
                self.0 = Some(m);
                Ok(())
            }
        }
    }

    /// Notes every field of an `application/x-www-form-urlencoded` string (a query; WHATWG URL's
    /// form-urlencoded parser) that a framework reads as `_method` (`names_override`).
    pub(crate) fn note_form(&mut self, form: &[u8]) -> Result<(), Reason> {
        for (k, v) in form_urlencoded::parse(form) {
            if names_override(&k) {
                self.note(v.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Adds the overrides of `other`; `malformed_request` if they name another method.
    pub(crate) fn merge(mut self, other: Option<&Method>) -> Result<Option<Method>, Reason> {
        if let Some(m) = other {
            self.note(m.as_str().as_bytes())?;
        }
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests;
