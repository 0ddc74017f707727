//! The request path, top to bottom, as one pingora `ProxyHttp` impl:
//! strip identity headers -> check path -> match route -> authenticate -> set identity ->
//! forward (with `X-Forwarded-*`) -> count and log.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::auth::RequestParts;
use crate::config::{CorsPreflight, Unmatched};
use crate::metrics::{metrics, NO_ROUTE};
use crate::reason::Reason;
use crate::routes::{self, check_path};
use crate::runtime::Runtime;
use crate::{socketio, websocket};

/// State shared by the proxy, admin and background services.
pub struct State {
    /// The config in force; each request keeps the one it started with.
    pub runtime: ArcSwap<Runtime>,
    /// SIGTERM received: `/readyz` answers 503 while in-flight requests drain.
    pub draining: AtomicBool,
    /// Requests (and websockets) in flight.
    pub inflight: Arc<AtomicUsize>,
    /// The config file, watched for reloads (`None` for the built-in demo config).
    pub config_path: Option<std::path::PathBuf>,
}

impl State {
    /// State for a freshly loaded config.
    pub fn new(runtime: Runtime, config_path: Option<std::path::PathBuf>) -> State {
        State {
            runtime: ArcSwap::from_pointee(runtime),
            draining: AtomicBool::new(false),
            inflight: Arc::new(AtomicUsize::new(0)),
            config_path,
        }
    }
}

/// Counts a request in flight for as long as its context lives.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The keygate proxy service.
pub struct Keygate {
    /// Shared with the admin and control services.
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
    /// Set when a websocket upgrade is authenticated inside the stream (Socket.IO CONNECT).
    socketio: Option<Box<SocketIo>>,
    /// `authenticator/key` that let the request in (for the access log).
    credential: Option<Arc<str>>,
    upstream_status: u16,
    _inflight: InFlight,
}

/// A websocket whose Socket.IO CONNECT packets keygate authenticates.
pub struct SocketIo {
    scanner: socketio::Scanner,
    /// The upgrade request's headers, query and path parameters, for all-of alternatives
    /// that mix a `socketio_auth` source with others.
    headers: http::HeaderMap,
    query: Option<String>,
    params: Vec<(String, String)>,
    /// CONNECT packets authenticated so far.
    connects: u32,
    /// The client was refused: upstream bytes are dropped from then on.
    rejected: bool,
    /// Why the last CONNECT was refused (for the access log).
    refused: Option<Reason>,
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
            socketio: None,
            credential: None,
            upstream_status: 0,
            _inflight: InFlight::new(&self.state.inflight),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let rt = ctx.runtime.clone();
        ctx.started = Instant::now();
        rt.identity.strip(session.req_header_mut());

        let req = session.req_header();
        // A CORS preflight is matched with the method it asks about; it carries no credentials
        // by design and is forwarded without identity (identity headers already stripped).
        let preflight = match rt.cors_preflight {
            CorsPreflight::Forward => cors_preflight_method(req),
            CorsPreflight::Deny => None,
        };
        let method = preflight.as_ref().unwrap_or(&req.method);
        let found = match check_path(req.uri.path()) {
            Ok(path) => rt.routes.find(&path, method),
            Err(reason) => return self.deny(session, ctx, reason).await,
        };
        let Some(m) = found else {
            return match rt.unmatched {
                Unmatched::Deny => self.deny(session, ctx, Reason::NoRoute).await,
                Unmatched::Anonymous => Ok(false),
            };
        };
        ctx.route = Some(m.route);
        if preflight.is_some() {
            return Ok(false);
        }
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
                ctx.credential = Some(identity.credential);
                Ok(false)
            }
            Err(_) if route.socketio && is_websocket_upgrade(req) => {
                // Forwarded with identity headers stripped; each CONNECT packet is checked.
                let limit = rt.max_token_bytes * 2 + 1024;
                ctx.socketio = Some(Box::new(SocketIo {
                    scanner: socketio::Scanner::new(limit),
                    headers: req.headers.clone(),
                    query: req.uri.query().map(str::to_string),
                    params: m.params,
                    connects: 0,
                    rejected: false,
                    refused: None,
                }));
                session.set_read_timeout(Some(rt.socketio_connect_timeout));
                Ok(false)
            }
            Err(_) if route.socketio && req.uri.query().is_some_and(|q| q.contains("EIO=")) => {
                self.deny(session, ctx, Reason::WebsocketRequired).await
            }
            Err(reason) => self.deny(session, ctx, reason).await,
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // Socket.IO mode is only entered for a bodiless GET upgrade, so every body chunk is
        // websocket data, even one pingora hands over before `was_upgraded()` turns true.
        if ctx.socketio.is_none() {
            return Ok(());
        }
        let mut sio = ctx.socketio.take().expect("checked above");
        let result = self.socketio_filter(session, body, ctx, &mut sio).await;
        ctx.socketio = Some(sio);
        result
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = upstream_response.status.as_u16();
        Ok(())
    }

    /// What pingora prints beside its own errors: method and path, never the query string,
    /// which can carry credentials (`?user_token=`, `?api_key=`).
    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.socketio.as_ref().is_some_and(|s| s.rejected) {
            *body = Some(Bytes::new()); // the backend gets no say after a refusal
        }
        Ok(None)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.runtime.upstream.peer().await
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
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
        if ctx.socketio.is_some() {
            // keygate reads these frames: no permessage-deflate (RFC 7692) on this connection.
            upstream.remove_header("sec-websocket-extensions");
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
        let (outcome, reason) = match (ctx.denied, &ctx.socketio) {
            (Some(r), _) => ("denied", r.as_str()),
            (None, Some(s)) => match (s.refused, s.connects) {
                (Some(r), _) => ("denied", r.as_str()),
                // A websocket that never sent a CONNECT: refused for want of credentials.
                (None, 0) => ("denied", Reason::MissingCredentials.as_str()),
                (None, _) => ("allowed", "none"),
            },
            (None, None) => ("allowed", "none"),
        };
        // Socket.IO CONNECT packets were counted one by one as they were authenticated.
        if ctx.socketio.as_ref().is_none_or(|s| s.connects == 0) {
            m.requests
                .with_label_values(&[route, outcome, reason])
                .inc();
        }
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
            authenticator = ctx.credential.as_deref().unwrap_or(""),
            user_id = ctx.user_id.as_deref().unwrap_or(""),
            upstream_status = ctx.upstream_status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        );
    }
}

/// For a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`), the
/// method it asks about.
fn cors_preflight_method(req: &RequestHeader) -> Option<http::Method> {
    if req.method != http::Method::OPTIONS || !req.headers.contains_key(http::header::ORIGIN) {
        return None;
    }
    let asked = req
        .headers
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)?;
    http::Method::from_bytes(asked.as_bytes()).ok()
}

/// A GET with `Upgrade: websocket` (RFC 6455 §4.1).
fn is_websocket_upgrade(req: &RequestHeader) -> bool {
    req.method == http::Method::GET
        && req
            .headers
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
            })
}

impl Keygate {
    /// Reads the client's websocket stream until (and including) each Socket.IO CONNECT,
    /// authenticates it, and forwards it re-encoded with the verified identity; refuses it with
    /// `44{...}` and close 1008 otherwise.
    async fn socketio_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        ctx: &mut Ctx,
        sio: &mut SocketIo,
    ) -> Result<()> {
        if sio.rejected {
            *body = None;
            return Ok(());
        }
        let Some(chunk) = body.take() else {
            return Ok(()); // the client closed
        };
        let rt = ctx.runtime.clone();
        let route = &rt.routes.routes[ctx.route.unwrap_or_default()];
        let mut out: Vec<Bytes> = Vec::new();
        for item in sio.scanner.feed(chunk) {
            let (namespace, auth) = match item {
                socketio::Item::Raw(b) => {
                    out.push(b);
                    continue;
                }
                socketio::Item::Message(m) => {
                    let mask = Some(websocket::random_mask());
                    out.push(websocket::encode(websocket::opcode::TEXT, &m, mask));
                    continue;
                }
                socketio::Item::Close(why) => {
                    tracing::info!(route = %route.name, why, "websocket closed before a Socket.IO CONNECT");
                    sio.rejected = true;
                    let close = websocket::close_frame(1008, "policy violation");
                    session.write_response_body(Some(close), false).await?;
                    *body = None;
                    return Ok(());
                }
                socketio::Item::Connect { namespace, auth } => (namespace, auth),
            };
            sio.connects += 1;
            let verdict = match &auth {
                None => Err(Reason::MalformedCredentials),
                Some(a) => {
                    let parts = RequestParts {
                        headers: &sio.headers,
                        query: sio.query.as_deref(),
                        params: &sio.params,
                        socketio_auth: Some(a),
                        max_token_bytes: rt.max_token_bytes,
                    };
                    let timings = Some(&metrics().auth_duration);
                    routes::authorize(route, &rt.authenticators, rt.mode, &parts, timings).await
                }
            };
            let requests = &metrics().requests;
            match (verdict, auth) {
                (Ok(Some(id)), Some(a)) => {
                    requests
                        .with_label_values(&[&route.name, "allowed", "none"])
                        .inc();
                    out.push(socketio::connect_frame(
                        &namespace,
                        &a,
                        &rt.socketio_key,
                        &id,
                    ));
                    ctx.user_id = id.user_id;
                    ctx.credential = Some(id.credential);
                    session.set_read_timeout(None);
                }
                (verdict, _) => {
                    let reason = verdict.err().unwrap_or(Reason::MissingCredentials);
                    requests
                        .with_label_values(&[&route.name, "denied", reason.as_str()])
                        .inc();
                    tracing::info!(route = %route.name, reason = reason.as_str(), %namespace, "Socket.IO CONNECT refused");
                    sio.rejected = true;
                    sio.refused = Some(reason);
                    let refusal = socketio::refusal(&namespace, reason.as_str());
                    session.write_response_body(Some(refusal), false).await?;
                    *body = None;
                    return Ok(());
                }
            }
        }
        *body = Some(match out.len() {
            0 => Bytes::new(),
            1 => out.pop().unwrap_or_default(),
            _ => Bytes::from(out.concat()),
        });
        Ok(())
    }

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
