//! The Socket.IO gate of one websocket on a `socketio: true` route: every CONNECT the client
//! sends is authorized with the rules in force *now* (a reload that removes a key also stops it
//! on open sockets) and forwarded re-encoded with keygate's identity, or refused.
//!
//! A CONNECT is authorized by its own `auth` object when the upgrade carried no credential
//! ([`Authorized::InStream`]), or by re-verifying the upgrade's own header/query credential when
//! it did ([`Authorized::ByUpgrade`]); either way the client's `auth[identity.socketio_key]` is
//! replaced. Until the first CONNECT is accepted the connection has an absolute deadline,
//! `limits.socketio_connect_timeout_seconds` from the 101: pings do not extend it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use pingora::proxy::Session;
use serde_json::{Map, Value};

use super::scan::{Item, Scanner};
use crate::auth::Identity;
use crate::observe::Timings;
use crate::policy;
use crate::reason::Reason;
use crate::routes::Lookup;
use crate::state::State;
use crate::websocket::close_frame;

pub(crate) use super::Authorized;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// No CONNECT accepted yet.
    Awaiting,
    /// At least one CONNECT accepted.
    Open,
    /// Refused or closed: nothing more passes either way.
    Closed,
}

/// The upgrade request, kept to authorize later CONNECTs against the current rules.
#[derive(Debug)]
struct Upgrade {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

/// The gate state of one websocket.
#[derive(Debug)]
pub(crate) struct Gate {
    scanner: Scanner,
    how: Authorized,
    stage: Stage,
    upgrade: Upgrade,
    timeout: Duration,
    deadline: Option<Instant>,
    /// The client address, for `throttle`.
    client: Option<std::net::IpAddr>,
    /// CONNECTs authorized so far (accepted or refused; each counted in the metrics).
    pub(crate) connects: u32,
    /// CONNECTs accepted so far.
    pub(crate) accepted: u32,
    /// Why the connection was refused or closed, for the access log.
    pub(crate) refused: Option<Reason>,
    /// The identity of the last accepted CONNECT, for the access log.
    pub(crate) identity: Option<Identity>,
    /// sessions (issue 17): credentials of CONNECTs accepted since the proxy last took them,
    /// for the connection's session.
    pub(crate) grants: Vec<crate::sessions::Grant>,
}

impl Gate {
    /// A gate for the upgrade `req` (whose canonical path is `path`), reading CONNECTs of at
    /// most `limit` bytes.
    pub(crate) fn new(
        req: &pingora::http::RequestHeader,
        path: String,
        how: Authorized,
        limit: usize,
        timeout: Duration,
        client: Option<std::net::IpAddr>,
    ) -> Gate {
        Gate {
            scanner: Scanner::new(limit),
            how,
            stage: Stage::Awaiting,
            upgrade: Upgrade {
                path,
                query: crate::canonical::split_target(req.raw_path())
                    .and_then(|(_, q)| q)
                    .map(str::to_string),
                headers: req.headers.clone(),
            },
            timeout,
            deadline: None,
            client,
            connects: 0,
            accepted: 0,
            refused: None,
            identity: None,
            grants: Vec::new(),
        }
    }

    /// How CONNECTs are authorized.
    pub(crate) fn how(&self) -> Authorized {
        self.how
    }

    /// Whether the backend's bytes must be dropped (the client was refused).
    pub(crate) fn closed(&self) -> bool {
        self.stage == Stage::Closed
    }

    /// The backend answered 101: the CONNECT deadline starts now.
    pub(crate) fn upgraded(&mut self, session: &mut Session) {
        self.deadline = Some(Instant::now() + self.timeout);
        session.set_read_timeout(Some(self.timeout));
    }

    /// Whether the CONNECT deadline has passed without a CONNECT.
    pub(crate) fn expired(&self) -> bool {
        self.stage == Stage::Awaiting && self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Ends the connection with a close frame 1008 (the deadline passed, or a protocol
    /// violation): written at once; the backend gets nothing more.
    pub(crate) async fn close(&mut self, session: &mut Session, why: &str) -> pingora::Result<()> {
        tracing::info!(why, "Socket.IO websocket closed");
        self.stage = Stage::Closed;
        self.refused.get_or_insert(Reason::MissingCredentials);
        session
            .write_response_body(Some(close_frame(1008, "policy violation")), false)
            .await
    }

    /// Reads one chunk of the client's stream (`request_body_filter`); rewrites `body` to what
    /// the backend may see, or to `None` once the client is refused.
    pub(crate) async fn filter(
        &mut self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        state: &State,
    ) -> pingora::Result<()> {
        if self.stage == Stage::Closed {
            *body = None;
            return Ok(());
        }
        let Some(chunk) = body.take() else {
            return Ok(()); // the client closed
        };
        if self.stage == Stage::Awaiting {
            if let Some(deadline) = self.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.close(session, "no CONNECT before the deadline")
                        .await?;
                    return Ok(());
                }
                session.set_read_timeout(Some(left));
            }
        }
        let mut out: Vec<Bytes> = Vec::new();
        for item in self.scanner.feed(chunk) {
            match item {
                Item::Raw(b) => out.push(b),
                Item::Close(why) => {
                    self.close(session, why).await?;
                    return Ok(());
                }
                Item::Connect { namespace, auth } => {
                    match self.authorize(&namespace, auth, state).await {
                        Ok(frame) => {
                            out.push(frame);
                            self.stage = Stage::Open;
                            session.set_read_timeout(None);
                        }
                        Err(reason) => {
                            tracing::info!(reason = reason.as_str(), %namespace, "Socket.IO CONNECT refused");
                            self.stage = Stage::Closed;
                            self.refused = Some(reason);
                            let refusal = super::refusal(&namespace, reason.as_str());
                            session.write_response_body(Some(refusal), false).await?;
                            return Ok(());
                        }
                    }
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

    /// Authorizes one CONNECT under the rules in force; the frame to forward, or why not.
    async fn authorize(
        &mut self,
        namespace: &str,
        auth: Option<Map<String, Value>>,
        state: &State,
    ) -> Result<Bytes, Reason> {
        let rules = state.rules.load_full();
        self.connects += 1;
        let path = crate::path::check(&self.upgrade.path)?;
        let Lookup::Matched(m) = rules.routes.find(&path, &Method::GET) else {
            let refused = Err(Reason::NoRoute);
            return crate::enforce::settle_connect(state, &rules, None, refused, self.client)
                .await
                .map(|_| Bytes::new());
        };
        let route = &rules.routes.routes[m.route];
        let decision = match (&auth, route.socketio) {
            (_, false) => Err(Reason::NoRoute),
            (None, true) => Err(Reason::MalformedCredentials),
            (Some(a), true) => {
                let parts = crate::auth::RequestParts {
                    headers: &self.upgrade.headers,
                    query: self.upgrade.query.as_deref(),
                    params: &m.params,
                    socketio_auth: (self.how == Authorized::InStream).then_some(a),
                    max_token_bytes: rules.max_token_bytes,
                    method: &Method::GET,
                    body: None,
                };
                policy::authorize(
                    route,
                    &rules.authenticators,
                    rules.mode,
                    &parts,
                    &state.revocations.load(),
                    &mut Timings(&rules, None),
                )
                .await
                .and_then(|id| id.ok_or(Reason::MissingCredentials))
            }
        };
        // The signed identity assertion travels in the identity object; without it, refused.
        let decision = decision.and_then(|id| {
            let assertion = rules.identity.assertion(&id, &route.name).map_err(|m| {
                tracing::error!(error = %m, "identity assertion not signed: CONNECT refused");
                Reason::KeySourceUnavailable
            })?;
            Ok((id, assertion))
        });
        let (decision, assertion) = match decision {
            Ok((id, a)) => (Ok(id), a),
            Err(r) => (Err(r), None),
        };
        let id =
            crate::enforce::settle_connect(state, &rules, Some(m.route), decision, self.client)
                .await?;
        if let (Authorized::InStream, Some(a)) = (self.how, &auth) {
            // This CONNECT's credential now holds the session (crate::sessions).
            let grant = crate::sessions::Grant::connect(&rules, namespace, a, &id);
            self.grants.push(grant);
        }
        let frame = super::connect_frame(
            namespace,
            &auth.unwrap_or_default(),
            &rules.socketio_key,
            &id,
            assertion.as_deref(),
        );
        self.accepted += 1;
        self.identity = Some(id);
        Ok(frame)
    }
}
