//! The proxy listener's medium for the answers keygate writes itself: denials (built by
//! `crate::enforce::render`) and answered CORS preflights.
//!
//! They are written with `write_response_header` + `write_response_body`, not pingora's
//! `respond_error`, which forces `Connection: close`: a denied client keeps its keep-alive
//! connection when that is safe. It is not when the body was not read (over [`DISCARD_LIMIT`],
//! or announced with `Expect: 100-continue`, RFC 9110 §10.1.1: keygate answers at once instead of
//! waiting for a body it would throw away) or the head was too large: the connection then closes.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, EXPECT};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;

use crate::reason::Reason;

/// Largest request body read and thrown away so a denied client keeps its connection; a larger
/// body is not read (an unauthenticated client cannot make keygate consume an upload).
pub(crate) const DISCARD_LIMIT: usize = 64 * 1024;

/// Writes a denial for `reason` whose head and body `crate::enforce::render` built; always
/// `Ok(true)` ("response sent") unless writing failed.
pub(crate) async fn deny(
    session: &mut Session,
    reason: Reason,
    resp: ResponseHeader,
    body: Bytes,
) -> pingora::Result<bool> {
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

/// Writes an answered CORS preflight (204 from [`crate::cors::Cors::answer`]).
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
