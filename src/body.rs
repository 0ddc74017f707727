//! Bodies keygate must read (`docs/config.md`, "Bodies keygate reads"): on a route with
//! `bind_json` or an authenticator with a `json_body` source, the proxy reads the whole request
//! body before deciding, at most `limits.max_inspected_body_bytes`, then forwards it byte for
//! byte. Other routes never come here: their bodies stream to the backend as before.
//!
//! How it is forwarded: pingora-proxy enables the session's retry buffer and sends its content
//! to the upstream before reading any more of the body (`proxy_h1.rs`, `get_retry_buffer`). The
//! body is read here with that buffer enabled, so the upstream receives exactly the bytes read
//! (re-framed by pingora: `Content-Length` stays, `chunked` stays chunked). The buffer holds
//! 64 KiB (pingora-core `BODY_BUF_LIMIT`), hence the cap on the limit (`ruleset`).
//!
//! The body must be JSON by its headers too: `Content-Type` `application/json` or `*/*+json`,
//! no `Content-Encoding` but `identity`. A form or a compressed body could mean something else to
//! the backend than what keygate checked.
//!
//! A JSON body that is read is also checked for a top-level `_method` member (Laravel reads JSON
//! input as form input). A POSTed form on a route that restricts methods is not read here: it
//! streams to the backend through `crate::form::Scanner` (`Need::Scan`).

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use http::Method;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use crate::canonical::{Canonical, Overrides, OVERRIDE_PARAM};
use crate::reason::Reason;
use crate::routes::{Lookup, Route};
use crate::ruleset::Ruleset;

/// A body that was read (`json` is `None` when it was empty).
#[derive(Debug, Default)]
pub(crate) struct Body {
    /// The parsed body (`crate::json_body::parse`), `None` for an empty body.
    pub(crate) json: Option<serde_json::Value>,
    /// The method the body's `_method` fields or members name, if any (all agree).
    pub(crate) overridden: Option<Method>,
}

/// What a door must do with a request's body before or while forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Read it before deciding: the route reads the JSON body (`bind_json`, a `json_body`
    /// source).
    Json,
    /// Scan it while it streams (`crate::form::Scanner`): a POSTed body of this kind on a route
    /// that restricts methods, whose `_method` field a framework could obey.
    Scan(crate::form::Kind),
}

/// What `route` needs of the body of `req` (`None`: nothing).
///
/// Errors: as `crate::form::kind` for a POST to a route that restricts methods.
pub(crate) fn needed(route: &Route, req: &Canonical<'_>) -> Result<Option<Need>, Reason> {
    if route.reads_body {
        return Ok(Some(Need::Json));
    }
    if route.restricts_methods() && req.method == Method::POST {
        return Ok(crate::form::kind(req.headers)?.map(Need::Scan));
    }
    Ok(None)
}

/// The scanner for the body of `req`, forwarded on `route`, when the route needs one
/// (`Need::Scan`), with the kind of body it scans.
pub(crate) fn scanner(
    route: &Route,
    req: &Canonical<'_>,
) -> Option<(crate::form::Scanner, crate::form::Kind)> {
    match needed(route, req) {
        Ok(Some(Need::Scan(kind))) => {
            let multipart = crate::form::multipart(req.headers);
            let scanner = crate::form::Scanner::new(multipart);
            let boundary = multipart.then(|| crate::form::php_boundary(req.headers));
            let scanner = match boundary.flatten() {
                Some(b) => scanner.with_boundary(&b),
                None => scanner,
            };
            Some((scanner, kind))
        }
        _ => None,
    }
}

/// The index of the matched route when it reads bodies (one route lookup; `None` at once
/// when no route of the config reads bodies).
pub(crate) fn route_reading(rules: &Ruleset, req: &Canonical<'_>) -> Option<usize> {
    if !rules.routes.reads_bodies {
        return None;
    }
    let path = crate::path::check(&req.path).ok()?;
    match rules.routes.find(&path, &req.method) {
        Lookup::Matched(m) if rules.routes.routes[m.route].reads_body => Some(m.route),
        _ => None,
    }
}

/// Whether the headers promise a JSON body keygate can read as the backend will.
fn is_json(req: &RequestHeader) -> bool {
    let media = req
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let json = media.is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    let plain = crate::form::uncompressed(&req.headers);
    json && plain && req.headers.get_all(CONTENT_TYPE).iter().count() == 1
}

/// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1).
fn expects_continue(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the body of `session` (at most `limit` bytes, all of it within `deadline`) for a route
/// that inspects it.
///
/// Errors: `body_too_large` when `Content-Length` or the bytes read exceed `limit` (nothing more
/// is read; the connection is not reused); `malformed_body` when a non-empty body is not JSON by
/// its headers or its bytes, or the client stops sending it or is still sending it at the
/// deadline (a body trickled byte by byte must not hold a task for minutes);
/// `malformed_request` for a `_method` member that is not one method (`Overrides::note`).
pub(crate) async fn read(
    session: &mut Session,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Body, Reason> {
    let req = session.req_header();
    let declared = req
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Reason::BodyTooLarge);
    }
    let json_headers = is_json(req);
    if session.as_mut().is_body_empty() {
        return Ok(Body::default());
    }
    if !json_headers {
        return Err(Reason::MalformedBody);
    }
    if expects_continue(session.req_header()) {
        // RFC 9110 §10.1.1: the client waits for this before sending the body. The backend gets
        // the body at once, so it is not asked again.
        session
            .as_mut()
            .write_continue_response()
            .await
            .map_err(|_| Reason::MalformedBody)?;
        session.req_header_mut().remove_header(&EXPECT);
    }
    session.as_mut().enable_retry_buffering();
    let mut bytes = Vec::with_capacity(declared.map_or(1024, |n| n as usize));
    let all = async {
        loop {
            match session.as_mut().read_request_body().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > limit {
                        return Err(Reason::BodyTooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(()),
                Err(_) => return Err(Reason::MalformedBody),
            }
        }
    };
    tokio::time::timeout(deadline, all)
        .await
        .map_err(|_| Reason::MalformedBody)??;
    if session.as_ref().retry_buffer_truncated() {
        return Err(Reason::BodyTooLarge); // cannot happen under the cap; never forward a part
    }
    Body::parse(&bytes)
}

impl Body {
    /// A body from its bytes: empty, or JSON, whose top-level `_method` members must name one
    /// method.
    ///
    /// Errors: `malformed_body` for bytes that are not JSON; `malformed_request` for `_method`
    /// members that are not one method.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Body, Reason> {
        if bytes.is_empty() {
            return Ok(Body::default());
        }
        let json = crate::json_body::parse(bytes).map_err(|_| Reason::MalformedBody)?;
        let mut found = Overrides::default();
        let members = json.as_object().into_iter().flatten();
        for (_, v) in members.filter(|(k, _)| k.eq_ignore_ascii_case(OVERRIDE_PARAM)) {
            found.note(v.as_str().ok_or(Reason::MalformedRequest)?.as_bytes())?;
        }
        Ok(Body {
            json: Some(json),
            overridden: found.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn json_is_told_by_content_type_and_encoding() {
        assert!(is_json(&req(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(is_json(&req(&[(
            "content-type",
            "application/merge-patch+json"
        )])));
        assert!(is_json(&req(&[
            ("content-type", "Application/JSON"),
            ("content-encoding", "identity")
        ])));
        assert!(!is_json(&req(&[])));
        assert!(!is_json(&req(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(!is_json(&req(&[("content-type", "text/plain")])));
        assert!(!is_json(&req(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip")
        ])));
        assert!(!is_json(&req(&[
            ("content-type", "application/json"),
            ("content-type", "text/plain")
        ])));
    }
}
