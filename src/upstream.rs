//! The upstream (the unmodified backend): parsed at load, resolved in the background. A hostname
//! is looked up by [`resolve_loop`] on keygate's background runtime, at once and then every 30 s
//! (Kubernetes Service names, headless Services); while a lookup fails the last address keeps
//! being used. The request path never does DNS: it reads the resolved peer, and only while the
//! name has never resolved does it wait (at most `connect_timeout_ms`) for the first lookup.
//! Loading never depends on DNS, so `keygate check` works outside the cluster and keygate starts
//! before its backend's Service exists (requests then fail 502 until the name resolves).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType};
use tokio::sync::watch;

use crate::config::{FieldError, UpstreamConfig};

/// How long a resolved address is used before it is looked up again.
const RERESOLVE: Duration = Duration::from_secs(30);

/// How soon a failed first lookup is retried.
const RETRY_UNRESOLVED: Duration = Duration::from_secs(1);

/// How long an idle upstream connection stays in the pool.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// A resolved address and the peer built for it.
struct Resolved {
    addr: SocketAddr,
    peer: HttpPeer,
}

/// The compiled `upstream:` section.
pub(crate) struct Upstream {
    host: String,
    port: u16,
    tls: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    resolved: ArcSwapOption<Resolved>,
    /// Bumped whenever `resolved` is stored.
    resolutions: watch::Sender<u64>,
    /// `scheme://host:port` as configured (for logs and `keygate check`).
    pub(crate) url: String,
}

impl Upstream {
    /// Parses `upstream:`: an http(s) URL without path or query; `ca_file` must hold a PEM
    /// certificate (it is applied at start-up, see `crate::settings`).
    pub(crate) fn compile(u: &UpstreamConfig) -> Result<Upstream, FieldError> {
        let err = |m: &str| FieldError::new("upstream.url", m);
        if u.url.is_empty() {
            return Err(err("required (the backend, e.g. http://127.0.0.1:3000)"));
        }
        let url: http::Uri = u.url.parse().map_err(|_| err("not a URL"))?;
        let tls = match url.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(err("scheme must be http or https")),
        };
        if url
            .path_and_query()
            .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
        {
            return Err(err("must not have a path or query"));
        }
        let host = url
            .host()
            .ok_or_else(|| err("missing host"))?
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Some(f) = &u.ca_file {
            let pem = std::fs::read_to_string(&f.0).map_err(|e| {
                FieldError::new("upstream.ca_file", format!("cannot read {}: {e}", f.0))
            })?;
            if pem::parse_many(&pem).map_or(true, |b| !b.iter().any(|b| b.tag() == "CERTIFICATE")) {
                return Err(FieldError::new(
                    "upstream.ca_file",
                    format!("{}: no PEM CERTIFICATE", f.0),
                ));
            }
        }
        let up = Upstream {
            host: host.to_string(),
            port: url.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            tls,
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            read_timeout: Duration::from_millis(u.read_timeout_ms),
            resolved: ArcSwapOption::empty(),
            resolutions: watch::channel(0).0,
            url: u.url.0.clone(),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            up.store(SocketAddr::new(ip, up.port));
        }
        Ok(up)
    }

    /// The configured host and port (the upstream span's `server.address` / `server.port`).
    pub(crate) fn address(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    fn literal(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    fn store(&self, addr: SocketAddr) {
        let mut peer = HttpPeer::new(addr, self.tls, self.host.clone());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        // Pooled connections are dropped before common backends close them (Node.js closes
        // idle keep-alive connections after 5 s): a request sent on a connection the backend is
        // closing fails, and pingora retries only idempotent ones.
        peer.options.idle_timeout = Some(POOL_IDLE);
        self.resolved.store(Some(Arc::new(Resolved { addr, peer })));
        self.resolutions.send_modify(|n| *n += 1);
    }

    /// Keeps the address `old` (the upstream before a reload) resolved, if it names the same
    /// host and port, so a reload never leaves a gap.
    pub(crate) fn adopt(&self, old: &Upstream) {
        if self.resolved.load().is_none()
            && old.host == self.host
            && old.port == self.port
            && old.tls == self.tls
        {
            if let Some(r) = old.resolved.load_full() {
                self.store(r.addr);
            }
        }
    }

    /// The peer to connect to. Errors (`ConnectNoRoute`) only when the name has never resolved.
    pub(crate) async fn peer(&self) -> pingora::Result<Box<HttpPeer>> {
        if let Some(r) = self.resolved.load_full() {
            return Ok(Box::new(r.peer.clone()));
        }
        let mut rx = self.resolutions.subscribe();
        let _ = tokio::time::timeout(self.connect_timeout, rx.changed()).await;
        match self.resolved.load_full() {
            Some(r) => Ok(Box::new(r.peer.clone())),
            // An upstream failure: 502 for the client, `kind="connect"` in the metrics.
            None => Err(Error::create(
                ErrorType::ConnectNoRoute,
                pingora::ErrorSource::Upstream,
                Some(format!("cannot resolve the upstream host {}", self.host).into()),
                None,
            )),
        }
    }
}

/// Resolves `upstream`'s hostname at once, then every 30 s (every second while it never
/// resolved); returns when the upstream is dropped (config reload) or is an IP literal.
pub(crate) async fn resolve_loop(upstream: Weak<Upstream>) {
    loop {
        let Some(up) = upstream.upgrade() else { return };
        if up.literal() {
            return;
        }
        let target = (up.host.clone(), up.port);
        drop(up); // no strong reference across the lookup or the wait
        let found = tokio::net::lookup_host(target.clone())
            .await
            .ok()
            .and_then(|mut a| a.next());
        let Some(up) = upstream.upgrade() else { return };
        match found {
            Some(addr) => up.store(addr),
            None => {
                tracing::warn!(host = %target.0, "cannot resolve the upstream host; the last address stays in use")
            }
        }
        let wait = if up.resolved.load().is_some() {
            RERESOLVE
        } else {
            RETRY_UNRESOLVED
        };
        drop(up);
        tokio::time::sleep(wait).await;
    }
}
