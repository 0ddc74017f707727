//! The request path: keygate's pingora `ProxyHttp` impl, phases in execution order, each a few
//! lines delegating to the module that owns the decision.
//!
//! ```text
//!  new_ctx                 the rules in force for this request
//!  request_filter          server span (telemetry/) -> strip client identity headers -> the
//!                          canonical request (canonical.rs) -> refuse_client -> the body of a
//!                          route that reads it (body.rs) -> decide (decide.rs, in the
//!                          authenticate span) -> settle (enforce/) -> act: deny / answer / forward
//!  upstream_peer           the backend (upstream.rs); the upstream span starts
//!  upstream_request_filter the request as it leaves: preflight stripping, framing, forwarding
//!                          headers, traceparent, and identity headers last (no hop-by-hop
//!                          removal follows)
//!  request_body_filter     a form that could name a method: scanned as it streams (form.rs);
//!                          Socket.IO websockets: every CONNECT through the gate (socketio/gate.rs)
//!  upstream_response_filter an upgrade forwarded without a verified credential must get 101;
//!                          a 101 opens the connection's session (sessions/)
//!  response_filter         CORS headers for allowed origins; a forwarded preflight's answer
//!                          stripped to its CORS headers; a 101 drops this request's rules
//!  response_body_filter    nothing from the backend once the gate refused the client, nor
//!                          for a forwarded preflight
//!  poll_upgraded_close     an upgraded connection ends when its session does (sessions/)
//!  fail_to_proxy           keygate's own answer when the backend's must not reach the client
//!  logging                 the report (enforce/record.rs: metrics, access log, spans), and the
//!                          next request head's limits
//! ```

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::canonical::Canonical;
use crate::cors::Cors;
use crate::decide::Forwarding;
use crate::enforce::{Denial, Verdict};
use crate::observe::Timings;
use crate::reason::Reason;
use crate::socketio::Authorized;
use crate::state::{CountGuard, State};

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
            verdict: None,
            counters: None,
            gate: None,
            origin: None,
            client: None,
            peer: None,
            refused_upgrade: false,
            scan: None,
            refused_body: false,
            upstream_status: 0,
            trace: None,
            session: None,
            _inflight: CountGuard::new(&self.state.inflight),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let rules = ctx.rules().expect("rules are set until an upgrade");
        ctx.started = Instant::now();
        let telemetry = self.state.telemetry.as_ref();
        ctx.trace = telemetry.map(|t| t.request(session.req_header(), tls(session)));
        rules.identity.strip(session.req_header_mut());
        let req = session.req_header();
        ctx.origin = rules
            .cors
            .as_ref()
            .and_then(|c| c.allowed_origin(&req.headers));
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.client = peer.map(|p| rules.trusted_proxies.client_ip(p, req));
        ctx.peer = peer;
        // What the backend will act on: derived from the bytes pingora forwards, or refused.
        let canonical = match Canonical::proxied(req) {
            Ok(c) => c,
            Err(reason) => {
                return self
                    .deny(session, ctx, &rules, Denial::new(None, reason))
                    .await
            }
        };
        if let Some(d) = crate::enforce::refuse_client(&self.state, &rules, ctx.client, &canonical)
        {
            let sent = self.deny(session, ctx, &rules, d).await;
            ctx.trace_route(&rules);
            return sent;
        }
        // A route that reads bodies (bind_json, json_body) gets its body read here, before
        // deciding; pingora forwards it from its retry buffer (src/body.rs).
        let body = match crate::body::route_reading(&rules, &canonical) {
            None => None,
            Some(r) => match self.read_body(session, ctx, &rules, r).await {
                Ok(b) => Some(b),
                Err(sent) => return sent,
            },
        };
        let canonical = Canonical::proxied(session.req_header()).expect("derived above");
        ctx.trace_auth();
        let mut timings = Timings(&rules, ctx.trace.as_deref_mut());
        let revocations = self.state.revocations.load();
        let body = body.as_ref();
        let decision =
            crate::decide::decide(&rules, &canonical, body, &revocations, &mut timings).await;
        let decided = ctx.trace.is_some().then(std::time::SystemTime::now);
        let verdict = crate::enforce::settle(&self.state, &rules, decision, ctx.client).await;
        let forwarded = matches!(verdict, Verdict::Forward { .. } | Verdict::Observe { .. });
        let route = verdict.route().filter(|_| forwarded);
        let scan = route.and_then(|r| crate::body::scanner(&rules.routes.routes[r], &canonical));
        ctx.scan = scan.map(|(scanner, _)| scanner);
        let path = canonical.path.into_owned();
        let sent = self.act(session, ctx, &rules, verdict, path).await;
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
        if ctx.how() == Forwarding::Preflight {
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
        if let Some(id) = ctx.verdict.as_ref().and_then(Verdict::identity) {
            let route = ctx.counters.as_ref().map_or("", |c| &*c.name);
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
        // A form that could name a method is cut off before the bytes that would name it.
        if let (Some(scan), Some(chunk)) = (ctx.scan.as_mut(), body.as_mut()) {
            if scan.feed(chunk) < chunk.len() {
                ctx.refused_body = true;
                *body = None;
                return Error::e_explain(ErrorType::HTTPStatus(400), "form body names a method");
            }
        }
        // The gate exists only for a bodiless GET upgrade, so every chunk is websocket data.
        let Some(gate) = ctx.gate.as_mut() else {
            return Ok(());
        };
        let filtered = gate.filter(session, body, &self.state).await;
        // sessions (issue 17): accepted CONNECTs' credentials join the session.
        if let Some(s) = &ctx.session {
            gate.grants.drain(..).for_each(|g| s.grant(g));
        }
        filtered
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = resp.status.as_u16();
        // sessions (issue 17): an upgraded connection is a session until it ends.
        if let (101, Some(rules)) = (ctx.upstream_status, &ctx.rules) {
            let in_stream = ctx.gate.as_ref().map(|g| g.how()) == Some(Authorized::InStream);
            let route = ctx.verdict.as_ref().and_then(Verdict::route);
            let id = ctx.verdict.as_ref().and_then(Verdict::identity);
            let req = session.req_header();
            ctx.session = Some(self.state.sessions.open(rules, req, route, id, in_stream));
        }
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
        if ctx.how() == Forwarding::Preflight {
            crate::cors::strip_preflight_answer(resp);
        }
        // A quota route's answer says what is left of the quota.
        let ratelimit = ctx.verdict.as_ref().and_then(Verdict::ratelimit);
        crate::enforce::render::ratelimit(resp, ratelimit);
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
        if ctx.how() == Forwarding::Preflight {
            *body = None; // a preflight's answer has no body (cors::strip_preflight_answer)
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if ctx.refused_upgrade {
            let rules = ctx.rules().expect("rules are set until an upgrade");
            let denial = Denial::new(
                ctx.verdict.as_ref().and_then(Verdict::route),
                Reason::MissingCredentials,
            );
            let sent = self.deny(session, ctx, &rules, denial).await;
            return FailToProxy {
                error_code: if sent.is_ok() { 401 } else { 0 },
                can_reuse_downstream: false,
            };
        }
        if ctx.refused_body {
            let rules = ctx.rules().expect("rules are set until an upgrade");
            let route = ctx.verdict.as_ref().and_then(Verdict::route);
            let denial = Denial::new(route, Reason::MalformedBody);
            let sent = self.deny(session, ctx, &rules, denial).await;
            return FailToProxy {
                error_code: if sent.is_ok() { 400 } else { 0 },
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

    /// sessions (issue 17): ends an upgraded connection whose session the registry closed.
    fn poll_upgraded_close(
        &self,
        ctx: &mut Ctx,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<pingora::proxy::UpgradedClose> {
        match ctx.session.as_mut() {
            Some(s) => s.poll_close(cx),
            None => std::task::Poll::Pending,
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, _e: &Error) -> bool {
        // Both are logged by keygate, at info, with their reason.
        ctx.refused_upgrade
            || ctx.refused_body
            || ctx.gate.as_ref().is_some_and(|g| g.expired() || g.closed())
    }

    /// What pingora prints beside its own errors: the method and the matched route's template,
    /// never the path or query, which can carry credentials (`{key}` path parameters,
    /// `?user_token=`, `?api_key=`).
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        let route = ctx.verdict.as_ref().and_then(Verdict::route);
        let template = ctx
            .rules
            .as_ref()
            .zip(route)
            .map_or("(no route)", |(rules, r)| &rules.routes.routes[r].template);
        format!("{} {template}", session.req_header().method)
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Ctx) {
        // An upgraded websocket dropped its rules: the access-log policy in force now applies.
        let access_log = ctx
            .rules
            .as_ref()
            .map_or_else(|| self.state.rules.load().access_log, |r| r.access_log);
        let trace = ctx.trace.take();
        ctx.record(session, error, access_log).write(trace);
        if session.is_body_done() {
            crate::conn::next_head(session.stream());
        } else {
            session.set_keepalive(None);
        }
    }
}

/// Whether the client connection is TLS.
fn tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}
