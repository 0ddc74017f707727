//! CORS (`docs/config.md`, "CORS"; the Fetch standard's CORS protocol).
//!
//! A preflight is an `OPTIONS` with `Origin` and `Access-Control-Request-Method`. With a `cors`
//! block keygate answers it itself on a matched route (204, or 403 `cors_not_allowed`) and never
//! forwards it; responses to allowed origins, denials included, carry
//! `Access-Control-Allow-Origin` and `Vary: Origin`, and the backend's own `Access-Control-*`
//! response headers are replaced. Without one, `cors_preflight: forward` forwards a preflight
//! only when it has no body and no `Upgrade` and asks for a method the route allows, stripped
//! to [`PREFLIGHT_HEADERS`]; anything else is authenticated like any request.

use http::header::{
    HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    CONTENT_LENGTH, HOST, ORIGIN, TRANSFER_ENCODING, UPGRADE, VARY,
};
use http::{HeaderMap, Method};
use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::{CorsConfig, FieldError};
use crate::reason::Reason;

/// The only headers a forwarded preflight keeps (`cors_preflight: forward`).
pub(crate) const PREFLIGHT_HEADERS: [HeaderName; 4] = [
    HOST,
    ORIGIN,
    ACCESS_CONTROL_REQUEST_METHOD,
    ACCESS_CONTROL_REQUEST_HEADERS,
];

/// A CORS preflight request.
#[derive(Debug)]
pub(crate) struct Preflight<'a> {
    /// `Origin`.
    pub(crate) origin: &'a HeaderValue,
    /// `Access-Control-Request-Method`: the method the page wants to send.
    pub(crate) method: Method,
    /// `Access-Control-Request-Headers`, if any.
    pub(crate) headers: Option<&'a HeaderValue>,
}

/// The preflight in a request of `method` with `headers`, if it is one (one `Origin`, one valid
/// `Access-Control-Request-Method`).
pub(crate) fn preflight<'a>(method: &Method, headers: &'a HeaderMap) -> Option<Preflight<'a>> {
    if method != Method::OPTIONS {
        return None;
    }
    let origin = single(headers, &ORIGIN)?;
    let asked = single(headers, &ACCESS_CONTROL_REQUEST_METHOD)?;
    Some(Preflight {
        origin,
        method: Method::from_bytes(asked.as_bytes()).ok()?,
        headers: single(headers, &ACCESS_CONTROL_REQUEST_HEADERS),
    })
}

fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut all = headers.get_all(name).iter();
    let v = all.next()?;
    all.next().is_none().then_some(v)
}

/// Whether a preflight may be forwarded under `cors_preflight: forward`: no body, no `Upgrade`.
pub(crate) fn forwardable(headers: &HeaderMap) -> bool {
    let empty_body = headers.get(TRANSFER_ENCODING).is_none()
        && headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .all(|v| v.as_bytes().iter().all(|b| *b == b'0'));
    empty_body && !headers.contains_key(UPGRADE)
}

/// Strips a forwarded preflight to [`PREFLIGHT_HEADERS`].
pub(crate) fn strip_to_preflight(up: &mut RequestHeader) {
    let doomed: Vec<HeaderName> = up
        .headers
        .keys()
        .filter(|k| !PREFLIGHT_HEADERS.contains(k))
        .cloned()
        .collect();
    for name in doomed {
        up.remove_header(&name);
    }
}

/// Strips the backend's answer to a forwarded preflight to what a browser reads of it: the
/// status, `Access-Control-*` and `Vary`, without a body (Fetch standard, "CORS-preflight
/// fetch"). A handler that served the `OPTIONS` as a request (Express `app.all`) cannot hand
/// its content to an unauthenticated client this way.
pub(crate) fn strip_preflight_answer(resp: &mut ResponseHeader) {
    let doomed: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|k| *k != VARY && !k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in doomed {
        resp.remove_header(&name);
    }
    let _ = resp.insert_header(CONTENT_LENGTH, "0");
}

#[derive(Debug)]
enum Origins {
    Any,
    List(Vec<HeaderValue>),
}

/// The compiled `cors` block.
#[derive(Debug)]
pub(crate) struct Cors {
    origins: Origins,
    allowed_headers: Vec<HeaderName>,
    allow_headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: HeaderValue,
    credentials: bool,
}

impl Cors {
    /// Compiles `cors:`. Origins are exact (`scheme://host[:port]`, no path); `"*"` only without
    /// `allow_credentials` (Fetch standard: a credentialed response cannot allow `*`).
    pub(crate) fn compile(cfg: &CorsConfig) -> Result<Cors, FieldError> {
        let any = cfg.allowed_origins.iter().any(|o| o.0 == "*");
        if any && cfg.allow_credentials {
            return Err(FieldError::new(
                "cors.allowed_origins",
                "`*` cannot be combined with allow_credentials: list the origins",
            ));
        }
        if cfg.allowed_origins.is_empty() {
            return Err(FieldError::new(
                "cors.allowed_origins",
                "list at least one origin",
            ));
        }
        let mut list = Vec::new();
        for (i, o) in cfg.allowed_origins.iter().enumerate() {
            let ok = o.0 == "*"
                || o.parse::<http::Uri>().is_ok_and(|u| {
                    u.scheme().is_some()
                        && u.authority().is_some()
                        && u.path_and_query()
                            .is_none_or(|p| p.as_str().is_empty() || p == "/")
                        && !o.ends_with('/')
                });
            if !ok {
                return Err(FieldError::new(
                    format!("cors.allowed_origins[{i}]"),
                    format!("`{}` is not an origin (scheme://host[:port])", o.0),
                ));
            }
            list.push(HeaderValue::from_str(&o.0).map_err(|_| {
                FieldError::new(format!("cors.allowed_origins[{i}]"), "invalid characters")
            })?);
        }
        let names = |v: &[crate::config::value::Str], field: &str| {
            v.iter()
                .enumerate()
                .map(|(i, h)| {
                    HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).map_err(|_| {
                        FieldError::new(
                            format!("cors.{field}[{i}]"),
                            format!("invalid header name `{}`", h.0),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let allowed_headers = names(&cfg.allowed_headers, "allowed_headers")?;
        let expose = names(&cfg.expose_headers, "expose_headers")?;
        let join = |v: &[HeaderName]| {
            (!v.is_empty()).then(|| {
                let s: Vec<&str> = v.iter().map(HeaderName::as_str).collect();
                HeaderValue::from_str(&s.join(", ")).expect("header names are valid values")
            })
        };
        Ok(Cors {
            origins: if any {
                Origins::Any
            } else {
                Origins::List(list)
            },
            allow_headers: join(&allowed_headers),
            expose: join(&expose),
            allowed_headers,
            max_age: HeaderValue::from(cfg.max_age_seconds),
            credentials: cfg.allow_credentials,
        })
    }

    /// The request's `Origin`, when it is allowed.
    pub(crate) fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = single(headers, &ORIGIN)?;
        match &self.origins {
            Origins::Any => Some(origin.clone()),
            Origins::List(l) => l.iter().any(|o| o == origin).then(|| origin.clone()),
        }
    }

    /// Answers a preflight on a route: 204 with the `Access-Control-Allow-*` headers, or
    /// `cors_not_allowed` when the origin, the method (`route_allows`) or a requested header is
    /// not allowed.
    pub(crate) fn answer(
        &self,
        pf: &Preflight<'_>,
        route_allows: bool,
    ) -> Result<ResponseHeader, Reason> {
        let origin_ok = match &self.origins {
            Origins::Any => true,
            Origins::List(l) => l.iter().any(|o| o == pf.origin),
        };
        let headers_ok = pf.headers.is_none_or(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .all(|h| {
                        self.allowed_headers
                            .iter()
                            .any(|a| a.as_str().eq_ignore_ascii_case(h))
                    })
            })
        });
        if !(origin_ok && route_allows && headers_ok) {
            return Err(Reason::CorsNotAllowed);
        }
        let mut resp = ResponseHeader::build(204, Some(8)).map_err(|_| Reason::CorsNotAllowed)?;
        let method =
            HeaderValue::from_str(pf.method.as_str()).map_err(|_| Reason::CorsNotAllowed)?;
        let set = |r: &mut ResponseHeader, k: HeaderName, v: HeaderValue| {
            let _ = r.insert_header(k, v);
        };
        set(&mut resp, ACCESS_CONTROL_ALLOW_METHODS, method);
        if let Some(h) = &self.allow_headers {
            set(&mut resp, ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        set(&mut resp, ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        set(&mut resp, CONTENT_LENGTH, HeaderValue::from_static("0"));
        self.decorate(pf.origin, &mut resp);
        let _ = resp.append_header(
            VARY,
            "Access-Control-Request-Method, Access-Control-Request-Headers",
        );
        Ok(resp)
    }

    /// Adds the CORS response headers for an allowed `origin` (replacing any the backend set).
    pub(crate) fn decorate(&self, origin: &HeaderValue, resp: &mut ResponseHeader) {
        for h in [
            ACCESS_CONTROL_ALLOW_ORIGIN,
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            ACCESS_CONTROL_EXPOSE_HEADERS,
        ] {
            resp.remove_header(&h);
        }
        let allow = match &self.origins {
            Origins::Any => HeaderValue::from_static("*"),
            Origins::List(_) => origin.clone(),
        };
        let _ = resp.insert_header(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        if self.credentials {
            let _ = resp.insert_header(ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        if let Some(e) = &self.expose {
            let _ = resp.insert_header(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
        vary_on_origin(resp);
    }

    /// Removes the backend's CORS headers from a response to an origin that is not allowed.
    /// It says the answer varies by `Origin` all the same, so a cache never serves it to an
    /// allowed origin (nor an allowed origin's answer to others).
    pub(crate) fn strip(resp: &mut ResponseHeader) {
        for h in [
            ACCESS_CONTROL_ALLOW_ORIGIN,
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            ACCESS_CONTROL_EXPOSE_HEADERS,
            ACCESS_CONTROL_ALLOW_METHODS,
            ACCESS_CONTROL_ALLOW_HEADERS,
            ACCESS_CONTROL_MAX_AGE,
        ] {
            resp.remove_header(&h);
        }
        vary_on_origin(resp);
    }
}

/// Adds `Vary: Origin` unless a `Vary` line already names it (or `*`).
fn vary_on_origin(resp: &mut ResponseHeader) {
    let named = resp.headers.get_all(VARY).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|t| t.eq_ignore_ascii_case(b"origin") || t == b"*")
    });
    if !named {
        let _ = resp.append_header(VARY, "Origin");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::Str;

    fn cors(origins: &[&str], creds: bool) -> Result<Cors, FieldError> {
        Cors::compile(&CorsConfig {
            allowed_origins: origins.iter().map(|o| Str(o.to_string())).collect(),
            allowed_headers: vec![Str("Authorization".into()), Str("content-type".into())],
            expose_headers: vec![],
            max_age_seconds: 600,
            allow_credentials: creds,
        })
    }

    fn options(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("OPTIONS", b"/x", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn origins_are_validated() {
        assert!(cors(&["*"], true).is_err());
        assert!(cors(&["https://app.test/path"], false).is_err());
        assert!(cors(&["app.test"], false).is_err());
        assert!(cors(&[], false).is_err());
        assert!(cors(&["https://app.test", "http://localhost:3000"], true).is_ok());
    }

    #[test]
    fn preflights_are_answered_or_refused() {
        let c = cors(&["https://app.test"], true).unwrap();
        let r = options(&[
            ("origin", "https://app.test"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, Content-Type",
            ),
        ]);
        let pf = preflight(&r.method, &r.headers).unwrap();
        let ok = c.answer(&pf, true).unwrap();
        assert_eq!(ok.status, 204);
        assert_eq!(
            ok.headers["access-control-allow-origin"],
            "https://app.test"
        );
        assert_eq!(ok.headers["access-control-allow-credentials"], "true");
        assert_eq!(ok.headers["access-control-allow-methods"], "POST");
        assert_eq!(c.answer(&pf, false).unwrap_err(), Reason::CorsNotAllowed);
        let evil = options(&[
            ("origin", "https://evil.test"),
            ("access-control-request-method", "GET"),
        ]);
        assert_eq!(
            c.answer(&preflight(&evil.method, &evil.headers).unwrap(), true)
                .unwrap_err(),
            Reason::CorsNotAllowed
        );
        let extra = options(&[
            ("origin", "https://app.test"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-auth-user-id"),
        ]);
        assert!(c
            .answer(&preflight(&extra.method, &extra.headers).unwrap(), true)
            .is_err());
        let no_method = options(&[("origin", "https://app.test")]);
        assert!(preflight(&no_method.method, &no_method.headers).is_none());
        let mut two = options(&[("access-control-request-method", "GET")]);
        two.append_header("origin", "https://a.test").unwrap();
        two.append_header("origin", "https://app.test").unwrap();
        assert!(
            preflight(&two.method, &two.headers).is_none(),
            "two origins are no preflight"
        );
    }
}
