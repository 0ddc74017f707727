//! Responses keygate writes itself: denials (`docs/config.md`, "Responses to denied requests")
//! and answered CORS preflights.
//!
//! They are written with `write_response_header` + `write_response_body`, not pingora's
//! `respond_error`, which forces `Connection: close`: a denied client keeps its keep-alive
//! connection when that is safe. It is not when the body was not read (over [`DISCARD_LIMIT`],
//! or announced with `Expect: 100-continue`, RFC 9110 §10.1.1: keygate answers at once instead of
//! waiting for a body it would throw away) or the head was too large: the connection then closes.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, EXPECT, WWW_AUTHENTICATE};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;

use crate::cors::Cors;
use crate::reason::Reason;

/// Largest request body read and thrown away so a denied client keeps its connection; a larger
/// body is not read (an unauthenticated client cannot make keygate consume an upload).
pub(crate) const DISCARD_LIMIT: usize = 64 * 1024;

/// What a denial response carries besides its reason.
#[derive(Default)]
pub(crate) struct Denial<'a> {
    /// The route accepts a Bearer source: a 401 carries `WWW-Authenticate` (RFC 6750 §3).
    pub(crate) bearer: bool,
    /// For 405: the `Allow` value.
    pub(crate) allow: Option<&'a str>,
    /// The CORS policy, if any, and the request's `Origin` when it is allowed (so a browser can
    /// read the reason); a denial on a CORS config always varies by `Origin`.
    pub(crate) cors: Option<(&'a Cors, Option<HeaderValue>)>,
    /// For 429: the `Retry-After` value, seconds (RFC 9110 §10.2.3).
    pub(crate) retry_after: Option<u64>,
    /// For a quota route: its `RateLimit-Policy` and `RateLimit` fields (`crate::shared`).
    pub(crate) ratelimit: Option<&'a crate::shared::RateLimit>,
}

/// Writes the denial for `reason`; always `Ok(true)` ("response sent") unless writing failed.
pub(crate) async fn deny(
    session: &mut Session,
    reason: Reason,
    d: Denial<'_>,
) -> pingora::Result<bool> {
    let body = Bytes::from(reason.body());
    let mut resp = ResponseHeader::build(reason.status(), Some(8))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header(CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    if let Some(v) = reason.challenge(d.bearer) {
        resp.insert_header(WWW_AUTHENTICATE, v)?;
    }
    if let Some(allow) = d.allow {
        resp.insert_header(ALLOW, allow)?;
    }
    if let Some(secs) = d.retry_after {
        resp.insert_header(http::header::RETRY_AFTER, secs.to_string())?;
    }
    if let Some(rl) = d.ratelimit {
        for (name, value) in rl.headers() {
            resp.insert_header(name, value)?;
        }
    }
    match &d.cors {
        Some((cors, Some(origin))) => cors.decorate(origin, &mut resp),
        Some((_, None)) => Cors::strip(&mut resp),
        None => {}
    }
    // issue 19: a body keygate gave up reading (too large, too slow: src/body.rs) is not read
    // any further; the connection closes instead.
    let gave_up =
        matches!(reason, Reason::BodyTooLarge | Reason::MalformedBody) && !session.is_body_done();
    if reason == Reason::RequestHeaderTooLarge || gave_up || !discard_body(session).await {
        session.set_keepalive(None);
    }
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

/// Writes an answered CORS preflight (204 from [`Cors::answer`]).
pub(crate) async fn preflight(
    session: &mut Session,
    resp: ResponseHeader,
) -> pingora::Result<bool> {
    if !discard_body(session).await {
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(resp), true).await?;
    Ok(true)
}

/// Reads and drops a small request body; `false` when the body was left unread (too large, or
/// the client waits for `100 Continue`), so the connection must not be reused.
async fn discard_body(session: &mut Session) -> bool {
    discard_body_of(session).await
}

/// [`discard_body`] on any HTTP server session (the forward-auth listener's too).
pub(crate) async fn discard_body_of(session: &mut ServerSession) -> bool {
    if session.is_body_done() {
        return true;
    }
    let req = session.req_header();
    let expects_continue = req
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = req
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if expects_continue || declared.is_some_and(|n| n > DISCARD_LIMIT) {
        return false;
    }
    let mut read = 0;
    while !session.is_body_done() && read <= DISCARD_LIMIT {
        match session.read_request_body().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => return false,
        }
    }
    session.is_body_done()
}
