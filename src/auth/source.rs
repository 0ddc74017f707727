//! Credential sources (`from`, `token_from`, `key_from`, ...): where a credential is read from a
//! request. Reference: `docs/config.md`, "Credential sources".

use std::borrow::Cow;

use http::header::{HeaderName, COOKIE};
use http::{HeaderMap, Method};

use crate::config::{FieldError, SourceConfig};

/// What keygate can read a credential from. Built per request by the proxy (or, for Socket.IO,
/// by the websocket layer); holds only borrows, so building it allocates nothing.
pub struct RequestParts<'a> {
    /// Request headers (identity headers already stripped).
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// Path parameters of the matched route, percent-decoded.
    pub params: &'a [(String, String)],
    /// The auth object of a Socket.IO CONNECT packet, when authenticating one.
    pub socketio_auth: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// `limits.max_token_bytes`: longer credentials are malformed.
    pub max_token_bytes: usize,
    /// The request method (`allow_if`'s `method`).
    pub method: &'a Method,
    /// The JSON request body, on routes that read it (`bind_json`, `json_body` sources) and
    /// when it was not empty.
    pub body: Option<&'a serde_json::Value>,
}

impl<'a> RequestParts<'a> {
    /// The decoded value of path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The result of reading one credential.
#[derive(Debug, PartialEq, Eq)]
pub enum Extracted<'a> {
    /// Not present in any source.
    Absent,
    /// Present; borrowed unless it had to be percent-decoded.
    Present(Cow<'a, str>),
    /// Present but unusable: repeated, not visible ASCII, empty, or over `max_token_bytes`.
    Malformed,
}

/// One compiled source.
#[derive(Debug, Clone)]
pub enum Source {
    /// `{ header: NAME, scheme: S }`: `S` compared case-insensitively, then one space.
    Header {
        /// Lower-cased header name.
        name: HeaderName,
        /// Required scheme, e.g. `Bearer`.
        scheme: Option<String>,
    },
    /// `{ query: NAME }`, form-urlencoded.
    Query(String),
    /// `{ cookie: NAME }`.
    Cookie(String),
    /// `{ path_param: NAME }` of the matched route template.
    PathParam(String),
    /// `{ socketio_auth: FIELD, scheme: S }`: a field of the Socket.IO CONNECT auth object.
    SocketIoAuth {
        /// Field of the CONNECT auth object.
        field: String,
        /// Required scheme, e.g. `Bearer`.
        scheme: Option<String>,
    },
    /// `{ json_body: POINTER }`: a string in the JSON request body.
    JsonBody(crate::json_body::Pointer),
}

/// An ordered list of sources; the first present one is used.
#[derive(Debug, Clone, Default)]
pub struct Sources(pub Vec<Source>);

impl Sources {
    /// Compiles config sources; `path` names the field for errors.
    pub fn compile(cfg: &[SourceConfig], path: &str) -> Result<Sources, FieldError> {
        if cfg.is_empty() {
            return Err(FieldError::new(path, "at least one source is required"));
        }
        let mut out = Vec::with_capacity(cfg.len());
        for (i, s) in cfg.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let set = [
                &s.header,
                &s.query,
                &s.cookie,
                &s.path_param,
                &s.socketio_auth,
                &s.json_body,
            ]
            .iter()
            .filter(|o| o.is_some())
            .count();
            if set != 1 {
                return Err(FieldError::new(
                    p,
                    "exactly one of header, query, cookie, path_param, socketio_auth, json_body is required",
                ));
            }
            let scheme = s.scheme.as_ref().map(|x| x.0.clone());
            if scheme.is_some() && s.header.is_none() && s.socketio_auth.is_none() {
                return Err(FieldError::new(
                    p,
                    "scheme goes with header or socketio_auth only",
                ));
            }
            if scheme
                .as_deref()
                .is_some_and(|x| x.is_empty() || x.contains(' '))
            {
                return Err(FieldError::new(p, "scheme must be one word, e.g. Bearer"));
            }
            let src = if let Some(h) = &s.header {
                let name = HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|_| FieldError::new(&p, format!("invalid header name `{}`", h.0)))?;
                Source::Header { name, scheme }
            } else if let Some(q) = &s.query {
                Source::Query(q.0.clone())
            } else if let Some(c) = &s.cookie {
                Source::Cookie(c.0.clone())
            } else if let Some(pp) = &s.path_param {
                Source::PathParam(pp.0.clone())
            } else if let Some(j) = &s.json_body {
                let pointer = crate::json_body::Pointer::parse(j)
                    .map_err(|m| FieldError::new(format!("{p}.json_body"), m))?;
                if pointer.has_every() || pointer.tokens().is_empty() {
                    return Err(FieldError::new(
                        format!("{p}.json_body"),
                        "a json_body source names one member, e.g. /subscriberHash (no `*`)",
                    ));
                }
                Source::JsonBody(pointer)
            } else {
                let field = s
                    .socketio_auth
                    .as_ref()
                    .map(|f| f.0.clone())
                    .unwrap_or_default();
                Source::SocketIoAuth { field, scheme }
            };
            out.push(src);
        }
        Ok(Sources(out))
    }

    /// Reads the credential from the first source where it is present.
    pub fn extract<'a>(&self, req: &RequestParts<'a>) -> Extracted<'a> {
        for s in &self.0 {
            let got = s.extract(req);
            if got != Extracted::Absent {
                return match got {
                    Extracted::Present(v) if v.is_empty() || v.len() > req.max_token_bytes => {
                        Extracted::Malformed
                    }
                    other => other,
                };
            }
        }
        Extracted::Absent
    }

    /// Whether any source is an `Authorization`-style header with scheme `Bearer`
    /// (such routes answer 401 with `WWW-Authenticate: Bearer`, RFC 6750 §3).
    pub fn has_bearer(&self) -> bool {
        self.0.iter().any(|s| {
            matches!(s, Source::Header { scheme: Some(sc), .. } if sc.eq_ignore_ascii_case("bearer"))
        })
    }

    /// Whether any source reads the Socket.IO CONNECT auth object.
    pub fn has_socketio(&self) -> bool {
        self.0
            .iter()
            .any(|s| matches!(s, Source::SocketIoAuth { .. }))
    }

    /// Whether any source reads the JSON request body.
    pub fn has_json_body(&self) -> bool {
        self.0.iter().any(|s| matches!(s, Source::JsonBody(_)))
    }

    /// Path parameters these sources read (checked against route templates at load).
    pub fn path_params(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|s| match s {
            Source::PathParam(p) => Some(p.as_str()),
            _ => None,
        })
    }
}

impl Source {
    fn extract<'a>(&self, req: &RequestParts<'a>) -> Extracted<'a> {
        match self {
            Source::Header { name, scheme } => {
                let mut values = req.headers.get_all(name).iter();
                let Some(v) = values.next() else {
                    return Extracted::Absent;
                };
                if values.next().is_some() {
                    return Extracted::Malformed; // two copies: refuse to pick one
                }
                let Ok(v) = v.to_str() else {
                    return Extracted::Malformed;
                };
                match scheme {
                    None => Extracted::Present(Cow::Borrowed(v)),
                    Some(s) => strip_scheme(v, s),
                }
            }
            Source::Query(name) => {
                let Some(q) = req.query else {
                    return Extracted::Absent;
                };
                let mut found = None;
                for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                    if k == name.as_str() {
                        if found.is_some() {
                            return Extracted::Malformed;
                        }
                        found = Some(v);
                    }
                }
                found.map_or(Extracted::Absent, Extracted::Present)
            }
            Source::Cookie(name) => {
                let mut found = None;
                for header in req.headers.get_all(COOKIE) {
                    let Ok(h) = header.to_str() else {
                        return Extracted::Malformed;
                    };
                    for pair in h.split(';') {
                        let (k, v) = pair.trim().split_once('=').unwrap_or((pair.trim(), ""));
                        if k == name {
                            if found.is_some() {
                                return Extracted::Malformed;
                            }
                            found = Some(v.trim_matches('"'));
                        }
                    }
                }
                found.map_or(Extracted::Absent, |v| Extracted::Present(Cow::Borrowed(v)))
            }
            Source::PathParam(name) => req
                .param(name)
                .map_or(Extracted::Absent, |v| Extracted::Present(Cow::Borrowed(v))),
            Source::SocketIoAuth { field, scheme } => {
                let Some(auth) = req.socketio_auth else {
                    return Extracted::Absent;
                };
                match auth.get(field) {
                    None | Some(serde_json::Value::Null) => Extracted::Absent,
                    Some(serde_json::Value::String(v)) => match scheme {
                        None => Extracted::Present(Cow::Borrowed(v.as_str())),
                        Some(s) => strip_scheme(v, s),
                    },
                    Some(_) => Extracted::Malformed,
                }
            }
            Source::JsonBody(pointer) => match req.body.and_then(|b| pointer.get(b)) {
                None | Some(serde_json::Value::Null) => Extracted::Absent,
                Some(serde_json::Value::String(v)) => Extracted::Present(Cow::Borrowed(v.as_str())),
                Some(_) => Extracted::Malformed,
            },
        }
    }
}

/// `Bearer abc` -> `abc` for scheme `Bearer` (case-insensitive, exactly one space).
/// A different scheme means this source is absent; an empty credential is malformed.
fn strip_scheme<'a>(v: &'a str, scheme: &str) -> Extracted<'a> {
    let n = scheme.len();
    let b = v.as_bytes();
    if b.len() < n || !b[..n].eq_ignore_ascii_case(scheme.as_bytes()) {
        return Extracted::Absent;
    }
    match &v[n..] {
        "" => Extracted::Malformed,
        rest => match rest.strip_prefix(' ') {
            Some(tok) if !tok.is_empty() && !tok.contains(' ') => {
                Extracted::Present(Cow::Borrowed(tok))
            }
            Some(_) => Extracted::Malformed,
            None => Extracted::Absent, // e.g. scheme "Bearer" vs header "BearerX ..."
        },
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
