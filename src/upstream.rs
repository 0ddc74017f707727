//! The upstream (the unmodified backend): parsed at load, resolved lazily. A hostname is looked
//! up asynchronously on first use and again every 30 s (Kubernetes Service names, headless
//! Services); while a lookup fails the last address keeps being used. Loading never depends on
//! DNS, so `keygate check` works outside the cluster and keygate starts before its backend's
//! Service exists (requests then fail 502 until the name resolves).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType};

use crate::config::{FieldError, UpstreamConfig};

/// How long a resolved address is used before it is looked up again.
const RERESOLVE: Duration = Duration::from_secs(30);

/// How long an idle upstream connection stays in the pool.
const POOL_IDLE: Duration = Duration::from_secs(4);

struct Resolved {
    at: Instant,
    peer: HttpPeer,
}

/// The compiled `upstream:` section.
pub struct Upstream {
    host: String,
    port: u16,
    tls: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    /// An IP literal never needs a lookup.
    literal: bool,
    resolved: ArcSwapOption<Resolved>,
    /// `scheme://host:port` as configured (for logs and `keygate check`).
    pub url: String,
    /// `upstream.ca_file`: the CAs an https upstream is verified against.
    pub ca_file: Option<String>,
}

impl Upstream {
    /// Parses `upstream:`: an http(s) URL without path or query.
    pub fn compile(u: &UpstreamConfig) -> Result<Upstream, FieldError> {
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
        let port = url.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let up = Upstream {
            host: host.to_string(),
            port,
            tls,
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            read_timeout: Duration::from_millis(u.read_timeout_ms),
            literal: host.parse::<IpAddr>().is_ok(),
            resolved: ArcSwapOption::empty(),
            url: u.url.0.clone(),
            ca_file: u.ca_file.as_ref().map(|f| f.0.clone()),
        };
        if let Some(f) = &up.ca_file {
            let pem = std::fs::read_to_string(f).map_err(|e| {
                FieldError::new("upstream.ca_file", format!("cannot read {f}: {e}"))
            })?;
            if pem::parse_many(&pem).map_or(true, |b| !b.iter().any(|b| b.tag() == "CERTIFICATE")) {
                return Err(FieldError::new(
                    "upstream.ca_file",
                    format!("{f}: no PEM CERTIFICATE"),
                ));
            }
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            up.store(SocketAddr::new(ip, port));
        }
        Ok(up)
    }

    fn store(&self, addr: SocketAddr) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, self.tls, self.host.clone());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        // Pooled connections are dropped before common backends close them (Node.js closes
        // idle keep-alive connections after 5 s): a request sent on a connection the backend is
        // closing fails, and pingora retries only idempotent ones.
        peer.options.idle_timeout = Some(POOL_IDLE);
        self.resolved.store(Some(Arc::new(Resolved {
            at: Instant::now(),
            peer: peer.clone(),
        })));
        peer
    }

    /// The peer to connect to. Errors (`ConnectNoRoute`) only when the name never resolved.
    pub async fn peer(&self) -> pingora::Result<Box<HttpPeer>> {
        let current = self.resolved.load_full();
        if let Some(r) = &current {
            if self.literal || r.at.elapsed() < RERESOLVE {
                return Ok(Box::new(r.peer.clone()));
            }
        }
        let looked_up = tokio::net::lookup_host((self.host.as_str(), self.port)).await;
        match (looked_up.ok().and_then(|mut a| a.next()), current) {
            (Some(addr), _) => Ok(Box::new(self.store(addr))),
            (None, Some(stale)) => Ok(Box::new(stale.peer.clone())),
            (None, None) => Err(Error::explain(
                ErrorType::ConnectNoRoute,
                format!("cannot resolve the upstream host {}", self.host),
            )),
        }
    }
}
