//! The request path: keygate's pingora `ProxyHttp` impl, phases in execution order, each a few
//! lines delegating to the module that owns the decision.
//!
//! ```text
//!  new_ctx                 the rules in force for this request
//!  request_filter          server span (telemetry/) -> strip client identity headers -> decide
//!                          (decide.rs, in the authenticate span) -> deny / answer / forward
//!  upstream_peer           the backend (upstream.rs); the upstream span starts
//!  upstream_request_filter the request as it leaves: preflight stripping, framing, forwarding
//!                          headers, traceparent, and identity headers last (no hop-by-hop
//!                          removal follows)
//!  request_body_filter     Socket.IO websockets: every CONNECT through the gate (socketio/gate.rs)
//!  upstream_response_filter an upgrade forwarded without a verified credential must get 101
//!  response_filter         CORS headers for allowed origins; a 101 drops this request's rules
//!  response_body_filter    nothing from the backend once the gate refused the client
//!  fail_to_proxy           keygate's own answer when the backend's must not reach the client
//!  logging                 metrics, access log, spans ended, and the next request head's limits
//! ```

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::cors::Cors;
use crate::decide::Forwarding;
use crate::observe::Timings;
use crate::reason::Reason;
use crate::socketio::gate::Authorized;
use crate::state::{Counted, State};

mod ctx;

pub(crate) use ctx::Ctx;

/// The keygate proxy service.
pub(crate) struct Keygate {
    /// Shared with the admin and control services.
    pub(crate) state: Arc<State>,
}

#[async_trait]
impl ProxyHttp for Keygate {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            rules: Some(self.state.rules.load_full()),
            started: Instant::now(),
            route: None,
            denied: None,
            observed: None,
            identity: None,
            how: Forwarding::Plain,
            gate: None,
            origin: None,
            client: None,
            peer: None,
            refused_upgrade: false,
            upstream_status: 0,
            trace: None,
            _inflight: Counted::new(&self.state.inflight),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let rules = ctx.rules().expect("rules are set until an upgrade");
        ctx.started = Instant::now();
        let telemetry = self.state.telemetry.as_ref();
        ctx.trace = telemetry.map(|t| t.request(session.req_header(), tls(session)));
        rules.identity.strip(session.req_header_mut());
        let req = session.req_header();
        ctx.origin = rules.cors.as_ref().and_then(|c| c.allowed_origin(req));
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.client = peer.map(|p| rules.trusted_proxies.client_ip(p, req));
        ctx.peer = peer;
        if let Some(sent) = self.refuse_if_blocked(session, ctx, &rules).await {
            ctx.trace_route(&rules);
            return sent;
        }
        // issue 19: a route that reads bodies (bind_json, json_body) gets its body read here,
        // before deciding; pingora forwards it from its retry buffer (src/body.rs).
        let body = match self.read_body(session, ctx, &rules).await {
            Ok(b) => b,
            Err(sent) => return sent,
        };
        let req = session.req_header();
        ctx.trace_auth();
        let mut timings = Timings(&rules, ctx.trace.as_deref_mut());
        let revocations = self.state.revocations.load();
        let outcome =
            crate::decide::decide(&rules, req, body.as_ref(), &revocations, &mut timings).await;
        let decided = ctx.trace.is_some().then(std::time::SystemTime::now);
        let sent = self.carry_out(session, ctx, &rules, outcome).await;
        ctx.trace_decided(&rules, decided);
        sent
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let rules = ctx.rules().expect("rules are set until an upgrade");
        if let Some(t) = ctx.trace.as_deref_mut() {
            let (host, port) = rules.upstream.address();
            t.start_upstream(host, port);
        }
        rules.upstream.peer().await
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let rules = ctx.rules().expect("rules are set until an upgrade");
        if ctx.how == Forwarding::Preflight {
            crate::cors::strip_to_preflight(up);
            return Ok(());
        }
        crate::forwarding::normalise_content_length(up)?;
        rules.trusted_proxies.apply(up, ctx.peer, tls(session))?;
        if ctx.gate.is_some() {
            // keygate reads these frames: no permessage-deflate (RFC 7692) on this connection.
            up.remove_header("sec-websocket-extensions");
        }
        // W3C Trace Context with keygate's span as the parent; without telemetry the client's
        // `traceparent` / `tracestate` pass unchanged.
        if let Some(t) = &ctx.trace {
            t.inject(up);
        }
        // Last: nothing after this removes headers, so no `Connection` line can drop these.
        if let Some(id) = &ctx.identity {
            let route = ctx.route.as_ref().map_or("", |(c, _)| &*c.name);
            rules.identity.apply(up, id, route)?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // The gate exists only for a bodiless GET upgrade, so every chunk is websocket data.
        match ctx.gate.as_mut() {
            Some(gate) => gate.filter(session, body, &self.state).await,
            None => Ok(()),
        }
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = resp.status.as_u16();
        let Some(gate) = ctx.gate.as_mut() else {
            return Ok(());
        };
        match (resp.status.as_u16(), gate.how()) {
            (101, _) => gate.upgraded(session),
            // Forwarded without a verified credential: the backend's answer is not the client's.
            (_, Authorized::InStream) => {
                ctx.refused_upgrade = true;
                return Error::e_explain(
                    ErrorType::HTTPStatus(401),
                    "upgrade not answered with 101",
                );
            }
            _ => {}
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(cors) = ctx.rules.as_ref().and_then(|r| r.cors.as_ref()) {
            match &ctx.origin {
                Some(origin) => cors.decorate(origin, resp),
                None => Cors::strip(resp),
            }
        }
        if resp.status.as_u16() == 101 {
            ctx.rules = None;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.gate.as_ref().is_some_and(|g| g.closed()) {
            *body = Some(Bytes::new()); // the backend gets no say after a refusal
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if ctx.refused_upgrade {
            let rules = ctx.rules().expect("rules are set until an upgrade");
            let sent = self
                .deny(session, ctx, &rules, Reason::MissingCredentials, None, None)
                .await;
            return FailToProxy {
                error_code: if sent.is_ok() { 401 } else { 0 },
                can_reuse_downstream: false,
            };
        }
        if let Some(gate) = ctx.gate.as_mut().filter(|g| g.expired()) {
            let _ = gate.close(session, "no CONNECT before the deadline").await;
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        crate::observe::default_failure(session, e).await
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, _e: &Error) -> bool {
        // Both are logged by keygate, at info, with their reason.
        ctx.refused_upgrade || ctx.gate.as_ref().is_some_and(|g| g.expired() || g.closed())
    }

    /// What pingora prints beside its own errors: method and path, never the query string,
    /// which can carry credentials (`?user_token=`, `?api_key=`).
    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Ctx) {
        // An upgraded websocket dropped its rules: the access-log policy in force now applies.
        let access_log = ctx
            .rules
            .as_ref()
            .map_or_else(|| self.state.rules.load().access_log, |r| r.access_log);
        let trace = ctx.trace.take();
        crate::observe::request_done(session, error, &ctx.done(access_log), trace);
        if session.is_body_done() {
            crate::conn::next_head(session);
        } else {
            session.set_keepalive(None);
        }
    }
}

/// Whether the client connection is TLS.
fn tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}
