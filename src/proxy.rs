//! The request path, top to bottom, as one pingora `ProxyHttp` impl:
//! strip identity headers -> check path -> match route -> authenticate -> set identity ->
//! forward (with `X-Forwarded-*`) -> count and log.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::auth::RequestParts;
use crate::config::Unmatched;
use crate::metrics::{metrics, NO_ROUTE};
use crate::reason::Reason;
use crate::routes::{self, check_path};
use crate::runtime::Runtime;

/// State shared by the proxy, admin and background services.
pub struct State {
    /// The config in force; each request keeps the one it started with.
    pub runtime: ArcSwap<Runtime>,
}

/// The keygate proxy service.
pub struct Keygate {
    pub state: Arc<State>,
}

/// Per-request state.
pub struct Ctx {
    runtime: Arc<Runtime>,
    started: Instant,
    route: Option<usize>,
    /// `None` while undecided or allowed.
    denied: Option<Reason>,
    user_id: Option<String>,
}

impl Keygate {
    /// Writes a denial ourselves (not `respond_error`, which forces `Connection: close`), so the
    /// client's keep-alive connection survives.
    async fn deny(&self, session: &mut Session, ctx: &mut Ctx, reason: Reason) -> Result<bool> {
        ctx.denied = Some(reason);
        let bearer = ctx
            .route
            .is_some_and(|r| ctx.runtime.routes.routes[r].bearer);
        let body = Bytes::from(reason.body());
        let mut resp = ResponseHeader::build(reason.status(), Some(5))?;
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("content-length", body.len().to_string())?;
        resp.insert_header("cache-control", "no-store")?;
        if reason.status() == 401 && bearer {
            let v = if reason == Reason::MissingCredentials {
                "Bearer"
            } else {
                r#"Bearer error="invalid_token""#
            };
            resp.insert_header("www-authenticate", v)?;
        }
        discard_small_body(session).await;
        let head = session.req_header().method == http::Method::HEAD;
        session.write_response_header(Box::new(resp), head).await?;
        if !head {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(true)
    }
}

/// Largest request body read and thrown away so a denied client keeps its connection; a larger
/// body is not read (an unauthenticated client cannot make keygate consume an upload) and the
/// connection closes after the denial.
const DISCARD_LIMIT: usize = 64 * 1024;

async fn discard_small_body(session: &mut Session) {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DISCARD_LIMIT) {
        return;
    }
    let mut read = 0;
    while !session.is_body_done() && read <= DISCARD_LIMIT {
        match session.read_request_body().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
}

#[async_trait]
impl ProxyHttp for Keygate {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            runtime: self.state.runtime.load_full(),
            started: Instant::now(),
            route: None,
            denied: None,
            user_id: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let rt = ctx.runtime.clone();
        ctx.started = Instant::now();
        rt.identity.strip(session.req_header_mut());

        let req = session.req_header();
        let found = match check_path(req.uri.path()) {
            Ok(path) => rt.routes.find(&path, &req.method),
            Err(reason) => return self.deny(session, ctx, reason).await,
        };
        let Some(m) = found else {
            return match rt.unmatched {
                Unmatched::Deny => self.deny(session, ctx, Reason::NoRoute).await,
                Unmatched::Anonymous => Ok(false),
            };
        };
        ctx.route = Some(m.route);
        let route = &rt.routes.routes[m.route];
        let parts = RequestParts {
            headers: &req.headers,
            query: req.uri.query(),
            params: &m.params,
            socketio_auth: None,
            max_token_bytes: rt.max_token_bytes,
        };
        let timings = Some(&metrics().auth_duration);
        match routes::authorize(route, &rt.authenticators, rt.mode, &parts, timings).await {
            Ok(None) => Ok(false),
            Ok(Some(identity)) => {
                rt.identity.apply(session.req_header_mut(), &identity)?;
                ctx.user_id = identity.user_id;
                Ok(false)
            }
            Err(reason) => self.deny(session, ctx, reason).await,
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        Ok(Box::new(ctx.runtime.upstream.peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(ip) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        upstream.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
        if let Some(host) = session
            .req_header()
            .headers
            .get(http::header::HOST)
            .cloned()
        {
            upstream.insert_header("x-forwarded-host", host)?;
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Ctx) {
        let m = metrics();
        let route = ctx
            .route
            .map_or(NO_ROUTE, |r| &*ctx.runtime.routes.routes[r].name);
        let (outcome, reason) = match ctx.denied {
            Some(r) => ("denied", r.as_str()),
            None => ("allowed", "none"),
        };
        m.requests
            .with_label_values(&[route, outcome, reason])
            .inc();
        m.request_duration
            .with_label_values(&[route])
            .observe(ctx.started.elapsed().as_secs_f64());
        if let (Some(e), None) = (error, ctx.denied) {
            let kind = match e.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    "timeout"
                }
                ErrorType::ConnectRefused | ErrorType::ConnectError | ErrorType::ConnectNoRoute => {
                    "connect"
                }
                ErrorType::ConnectionClosed => "reset",
                _ if e.esource() == &ErrorSource::Upstream => "other",
                _ => "",
            };
            if !kind.is_empty() {
                m.upstream_errors.with_label_values(&[kind]).inc();
            }
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        tracing::info!(
            target: "keygate::access",
            route,
            method = %session.req_header().method,
            status,
            outcome,
            reason,
            user_id = ctx.user_id.as_deref().unwrap_or(""),
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        );
    }
}
