//! Sessions: every upgraded connection (a plain websocket, Knock's Phoenix socket, a Socket.IO
//! websocket and each namespace CONNECT on it) knows what authorized it and until when, and ends
//! when that does (`docs/config.md`, "Sessions and revocation").
//!
//! The proxy [`Sessions::open`]s a session on the backend's 101 and keeps its [`Handle`] in the
//! request context; the Socket.IO gate adds a [`Grant`] per accepted CONNECT. One registry task
//! per process (`registry`) owns every open session: a map entry and one timer-set entry each
//! (a `BTreeSet` ordered by deadline), so an idle socket costs no task and no timer of its own.
//! The registry closes a session
//! - at its credential's `valid_until` (`exp` + leeway: `token_expired`) when
//!   `sessions.end_at_expiry`, and at `opened + sessions.max_lifetime_seconds` (`max_lifetime`);
//! - when re-authorizing it fails (`recheck`): every `sessions.recheck_seconds`, and at once
//!   after any [`signal::poke`] (a reload, a JWK-set fetch, a revocation change).
//!
//! Closing is a message on the handle's oneshot channel; the connection's own task sees it
//! through pingora's upgraded-tunnel hook (`ProxyHttp::poll_upgraded_close`, the keygate patch in
//! `shims/pingora-proxy`) and writes a close frame 1008 with the reason code to the client and a
//! masked close frame 1001 to the backend, then closes both connections.
//!
//! What re-authorization needs ([`Kept`], [`Grant`]) stays in memory only; their `Debug` is
//! redacted and nothing here logs a credential.

pub(crate) mod recheck;
pub(crate) mod registry;
pub(crate) mod signal;

use std::future::Future as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue};
use pingora::http::RequestHeader;
use pingora::proxy::UpgradedClose;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::auth::{Identity, Source};
use crate::reason::Reason;
use crate::ruleset::Ruleset;
use crate::websocket::{close_frame, encode, opcode, random_mask};

/// Why keygate ended a session: the `reason` label of `keygate_sessions_closed_total`, the
/// access log's `reason` and the close frame's reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// Its credential expired or no longer passes (`token_expired`, `credential_revoked`,
    /// `unknown_key`, ...).
    Refused(Reason),
    /// `sessions.max_lifetime_seconds` passed.
    MaxLifetime,
    /// A Socket.IO websocket connected more than [`MAX_GRANTS`] namespaces.
    TooManyNamespaces,
}

impl Why {
    /// The reason code.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Why::Refused(r) => r.as_str(),
            Why::MaxLifetime => "max_lifetime",
            Why::TooManyNamespaces => "too_many_namespaces",
        }
    }

    /// The frames that end the tunnel: a close frame 1008 (policy violation, RFC 6455 §7.4.1)
    /// with the reason code to the client, and a masked close frame 1001 (going away) to the
    /// backend, as a client leaving would send it.
    pub(crate) fn frames(self) -> UpgradedClose {
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(self.as_str().as_bytes());
        UpgradedClose {
            downstream: close_frame(1008, self.as_str()),
            upstream: encode(opcode::CLOSE, &payload, Some(random_mask())),
        }
    }
}

/// What a session keeps of its upgrade request to re-authorize it: the path, the query and the
/// headers the authenticators in force when it opened read credentials from. `Debug` redacted.
pub(crate) struct Kept {
    /// The request path, as received.
    pub(crate) path: String,
    /// The raw query string.
    pub(crate) query: Option<String>,
    /// The credential-bearing headers (identity headers already stripped).
    pub(crate) headers: HeaderMap,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept([redacted])")
    }
}

impl Kept {
    /// The parts of `req` that `rules`' authenticators read.
    fn of(rules: &Ruleset, req: &RequestHeader) -> Kept {
        let mut names: Vec<&http::HeaderName> = Vec::new();
        for src in sources(rules) {
            let name = match src {
                Source::Header { name, .. } => name,
                Source::Cookie(_) => &http::header::COOKIE,
                _ => continue,
            };
            if !names.contains(&name) && req.headers.contains_key(name) {
                names.push(name);
            }
        }
        let mut headers = HeaderMap::with_capacity(names.len());
        for name in names {
            for v in req.headers.get_all(name) {
                // A copy: the request's value is a slice of its whole read buffer, which a
                // clone would keep alive for as long as the session (~4 KiB measured).
                let mut copy = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
                copy.set_sensitive(true);
                headers.append(name.clone(), copy);
            }
        }
        Kept {
            path: req.uri.path().to_string(),
            query: req.uri.query().map(str::to_string),
            headers,
        }
    }
}

/// Every credential source of every authenticator of `rules`.
fn sources(rules: &Ruleset) -> impl Iterator<Item = &Source> {
    rules
        .authenticators
        .iter()
        .flat_map(|a| a.sources())
        .flat_map(|s| s.0.iter())
}

/// One credential that authorized a session: the upgrade's own, or a Socket.IO CONNECT's auth
/// fields. `Debug` redacted.
pub(crate) struct Grant {
    /// The Socket.IO namespace it was a CONNECT to (`None`: the upgrade's own credential): a
    /// later CONNECT to the same namespace (socket.io-client's `socket.connect()` again, with a
    /// fresh token from its `auth` callback) replaces it.
    pub(crate) namespace: Option<String>,
    /// The CONNECT's auth fields that `socketio_auth` sources read (`None`: the upgrade's
    /// header, query or cookie credential).
    pub(crate) auth: Option<Map<String, Value>>,
    /// The identity it verified as (`None`: an anonymous route, or a credential only
    /// observed): for the access log, and for revocations once it expired without
    /// `end_at_expiry`.
    pub(crate) identity: Option<Identity>,
}

impl Grant {
    /// When it stops being valid, Unix seconds (`Identity::valid_until`).
    pub(crate) fn valid_until(&self) -> Option<u64> {
        self.identity.as_ref().and_then(|i| i.valid_until)
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("valid_until", &self.valid_until())
            .field("credential", &self.identity.as_ref().map(|i| &i.credential))
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// The upgrade's own credential, verified as `identity` (`None`: an anonymous route, or a
    /// credential only observed).
    fn upgrade(identity: Option<&Identity>) -> Grant {
        Grant {
            namespace: None,
            auth: None,
            identity: identity.cloned(),
        }
    }

    /// A Socket.IO CONNECT to `namespace` accepted as `identity` with the auth object `auth` (of
    /// which only the fields `rules`' `socketio_auth` sources read are kept).
    pub(crate) fn connect(
        rules: &Ruleset,
        namespace: &str,
        auth: &Map<String, Value>,
        identity: &Identity,
    ) -> Grant {
        let mut kept = Map::new();
        for src in sources(rules) {
            if let Source::SocketIoAuth { field, .. } = src {
                if let Some(v) = auth.get(field) {
                    kept.insert(field.clone(), v.clone());
                }
            }
        }
        Grant {
            namespace: Some(namespace.to_string()),
            auth: Some(kept),
            identity: Some(identity.clone()),
        }
    }
}

/// One open session, as the registry holds it.
struct Entry {
    /// Its route's name (the `route` label).
    route: Arc<str>,
    /// Its route was in `enforce: observe` when it opened: expiry does not close it.
    observe: bool,
    /// What its upgrade carried.
    kept: Arc<Kept>,
    /// The credentials that authorized it (none yet: a Socket.IO websocket before its first
    /// CONNECT).
    grants: Vec<Arc<Grant>>,
    /// When it opened.
    opened: Instant,
    /// Tells its connection to end, and why.
    close: oneshot::Sender<Why>,
    /// Its entry in the deadline set, if any.
    due: Option<Instant>,
}

/// A registry message.
enum Command {
    /// A session opened.
    Open(u64, Box<Entry>),
    /// A Socket.IO CONNECT was accepted on it.
    Grant(u64, Grant),
    /// Its connection ended (the handle dropped).
    Gone(u64),
}

/// Most namespaces one Socket.IO websocket may hold: a CONNECT to one more ends the session
/// (`too_many_namespaces`) rather than letting its grants, each re-verified every round, grow
/// without bound.
pub(crate) const MAX_GRANTS: usize = 64;

/// The process's sessions: the registry's inbox (the registry task is [`registry::run`]).
pub(crate) struct Sessions {
    tx: mpsc::UnboundedSender<Command>,
    /// Taken by the registry task when it starts.
    rx: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    next: AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Sessions {
            tx,
            rx: Mutex::new(Some(rx)),
            next: AtomicU64::new(1),
        }
    }
}

impl Sessions {
    /// Opens the session of upgrade `req`, answered 101 under `rules` on route `route` (index;
    /// `None` when no route matched and `unmatched: anonymous` forwarded it). `identity` is the
    /// upgrade's verified identity; `in_stream` a Socket.IO websocket whose CONNECTs bring their
    /// own credentials (its grants come from the gate).
    pub(crate) fn open(
        &self,
        rules: &Ruleset,
        req: &RequestHeader,
        route: Option<usize>,
        identity: Option<&Identity>,
        in_stream: bool,
    ) -> Handle {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (close, closing) = oneshot::channel();
        let route = route.map(|r| &rules.routes.routes[r]);
        let entry = Entry {
            route: route.map_or_else(|| Arc::from(crate::metrics::NO_ROUTE), |r| r.name.clone()),
            observe: route.is_some_and(|r| r.observe),
            kept: Arc::new(Kept::of(rules, req)),
            grants: if in_stream {
                Vec::new()
            } else {
                vec![Arc::new(Grant::upgrade(identity))]
            },
            opened: Instant::now(),
            close,
            due: None,
        };
        let _ = self.tx.send(Command::Open(id, Box::new(entry)));
        Handle {
            id,
            tx: self.tx.clone(),
            closing: Some(closing),
        }
    }

    /// The registry's inbox, once (for [`registry::run`]).
    fn take_inbox(&self) -> Option<mpsc::UnboundedReceiver<Command>> {
        self.rx.lock().ok()?.take()
    }
}

/// One open session, held by its connection: dropping it ends the session.
pub(crate) struct Handle {
    id: u64,
    tx: mpsc::UnboundedSender<Command>,
    /// Gets the reason when the registry ends the session (`None` once received).
    closing: Option<oneshot::Receiver<Why>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handle({})", self.id)
    }
}

impl Handle {
    /// Adds a credential that authorized more of the session (a Socket.IO CONNECT).
    pub(crate) fn grant(&self, grant: Grant) {
        let _ = self.tx.send(Command::Grant(self.id, grant));
    }

    /// For `ProxyHttp::poll_upgraded_close`: ready with the frames to end the connection with,
    /// once the registry closed the session.
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<UpgradedClose> {
        let Some(rx) = self.closing.as_mut() else {
            return Poll::Pending;
        };
        match std::pin::Pin::new(rx).poll(cx) {
            Poll::Ready(got) => {
                self.closing = None;
                match got {
                    Ok(why) => Poll::Ready(why.frames()),
                    Err(_) => Poll::Pending, // the registry is gone: never closes
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Gone(self.id));
    }
}
