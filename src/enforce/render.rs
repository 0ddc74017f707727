//! A denial's response, built in one place (`docs/config.md`, "Responses to denied requests"):
//! status, JSON body `{"error","reason"}`, `Content-Type`, `Content-Length`,
//! `Cache-Control: no-store`, the route's `WWW-Authenticate` challenge (RFC 6750 §3), `Allow`
//! (405), `Retry-After` (RFC 9110 §10.2.3), a quota's `RateLimit-Policy` / `RateLimit`, and the
//! CORS headers (for an allowed origin; `Vary: Origin` whenever a `cors` block exists). Each door
//! only carries the result in its medium: pingora's response head (the proxy), an
//! `http::Response` (the forward-auth listener), raw bytes (the connection guard).

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use pingora::http::ResponseHeader;

use super::Denial;
use crate::cors::Cors;
use crate::ruleset::Ruleset;
use crate::shared::RateLimit;

/// The response head and body of `d` under `rules` (`None` for a head refused before it was
/// parsed: no route, no CORS), for a request whose `Origin` is `origin` when allowed.
pub(crate) fn denial(
    rules: Option<&Ruleset>,
    d: &Denial,
    origin: Option<&HeaderValue>,
) -> (ResponseHeader, Bytes) {
    let reason = d.reason;
    let body = Bytes::from(reason.body());
    let mut resp = ResponseHeader::build(reason.status(), Some(10)).expect("a valid status");
    let _ = resp.insert_header(CONTENT_TYPE, "application/json");
    let _ = resp.insert_header(CONTENT_LENGTH, body.len().to_string());
    let _ = resp.insert_header(CACHE_CONTROL, "no-store");
    let bearer = rules
        .zip(d.route)
        .is_some_and(|(rules, r)| rules.routes.routes[r].bearer);
    if let Some(v) = reason.challenge(bearer) {
        let _ = resp.insert_header(WWW_AUTHENTICATE, v);
    }
    if let Some(allow) = &d.allow {
        let _ = resp.insert_header(ALLOW, allow.as_str());
    }
    if let Some(secs) = d.retry_after {
        let _ = resp.insert_header(RETRY_AFTER, secs.to_string());
    }
    ratelimit(&mut resp, d.ratelimit.as_ref());
    match (rules.and_then(|r| r.cors.as_ref()), origin) {
        (Some(cors), Some(origin)) => cors.decorate(origin, &mut resp),
        (Some(_), None) => Cors::strip(&mut resp),
        (None, _) => {}
    }
    (resp, body)
}

/// Sets a quota route's `RateLimit-Policy` and `RateLimit` fields on an answer, allowed or not
/// (draft-ietf-httpapi-ratelimit-headers).
pub(crate) fn ratelimit(resp: &mut ResponseHeader, rl: Option<&RateLimit>) {
    for (name, value) in rl.iter().flat_map(|r| r.headers()) {
        let _ = resp.insert_header(name, value);
    }
}

/// `head` and `body` as an `http::Response` (the forward-auth listener's medium).
pub(crate) fn to_http(head: &ResponseHeader, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = head.status;
    *resp.headers_mut() = head.headers.clone();
    resp
}

/// `head` and `body` as the bytes of an HTTP/1.1 response that closes the connection (the
/// connection guard's medium: it writes before any parser is involved).
pub(crate) fn to_bytes(head: &ResponseHeader, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        head.status.as_u16(),
        head.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in head.headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Reason;

    #[test]
    fn one_denial_three_media() {
        let d = Denial {
            retry_after: Some(7),
            ..Denial::new(None, Reason::TooManyFailures)
        };
        let (head, body) = denial(None, &d, None);
        assert_eq!(head.status.as_u16(), 429);
        assert_eq!(
            &body[..],
            br#"{"error":"too_many_requests","reason":"too_many_failures"}"#
        );
        let http = to_http(&head, body.to_vec());
        assert_eq!(http.headers()["retry-after"], "7");
        assert_eq!(http.headers()["cache-control"], "no-store");
        let raw = String::from_utf8(to_bytes(&head, &body)).unwrap();
        assert!(
            raw.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("\r\ncontent-length: 58\r\n") && raw.ends_with("too_many_failures\"}")
        );
        assert!(raw.contains("\r\nconnection: close\r\n\r\n"));
    }
}
