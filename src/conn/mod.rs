//! Client connection limits (`docs/config.md`, `limits`): how many connections are held, how
//! large a request head may be, and how long it may take to arrive (slowloris).
//!
//! pingora reads a request head with a per-read timeout and up to 1 MiB, and holds any number
//! of connections. [`Limited`] wraps keygate's proxy as the listening service's application:
//! it refuses connections beyond `max_connections` and wraps each stream in a [`Guarded`]
//! stream that, while a request head is being read, counts its bytes (over
//! `max_request_header_bytes`: a 431 is written and the connection closed) and enforces one
//! deadline for the whole head (`request_header_timeout_seconds`: from accept for a
//! connection's first request, from the first byte for later ones; a 408 then, if anything
//! arrived). Between a response and the next head's first byte a keep-alive connection may stay
//! idle for `idle_timeout_seconds`, then it is closed quietly. Between heads the stream is a
//! plain pass-through; each door tells it, through [`next_head`], when the next head begins.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::metrics;
use crate::reason::Reason;
use crate::state::{CountGuard, State};

mod head;

use head::{HeadScan, Scanned};

/// The listening application: connection cap and guarded streams around the proxy `A`.
pub(crate) struct Limited<A> {
    /// The proxy (pingora's `HttpProxy`).
    pub(crate) app: Arc<A>,
    /// Connection counter and the limits in force.
    pub(crate) state: Arc<State>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Limited<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let (limits, access_log) = {
            let rules = self.state.rules.load();
            (rules.limits.clone(), rules.access_log)
        };
        let Some(open) = CountGuard::within(&self.state.connections, limits.max_connections) else {
            metrics().connections_refused.inc();
            return None; // closes the connection
        };
        let guarded = Guarded::new(
            stream,
            limits.max_request_header_bytes,
            limits.request_header_timeout,
            limits.idle_timeout,
            access_log,
        );
        self.app.process_new(Box::new(guarded), shutdown).await;
        drop(open);
        None
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// Tells the connection under a session (its `stream()`) that its next bytes are a new request
/// head (called when a request ends and its body was read whole).
pub(crate) fn next_head(stream: Option<&Stream>) {
    if let Some(g) = stream.and_then(|s| s.as_any().downcast_ref::<Guarded>()) {
        g.next_head.store(true, Ordering::Release);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Reading a head.
    Head(HeadScan),
    /// Body, idle keep-alive, or an upgraded stream: no limits here.
    Through,
}

/// A client stream that enforces the head limits (see the module docs).
pub(crate) struct Guarded {
    inner: Stream,
    reading: Reading,
    max_head: usize,
    timeout: Duration,
    /// `limits.idle_timeout_seconds`: how long a keep-alive connection may wait for its next head.
    idle_timeout: Duration,
    /// The deadline is the idle one (no byte of the next head yet), not the head's.
    idle: bool,
    /// Deadline of the head being read (or, while `idle`, of its first byte).
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    next_head: AtomicBool,
    /// For the access-log line of a refused head.
    access_log: crate::access_log::Policy,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("reading", &self.reading)
            .finish()
    }
}

impl Guarded {
    fn new(
        inner: Stream,
        max_head: usize,
        timeout: Duration,
        idle_timeout: Duration,
        access_log: crate::access_log::Policy,
    ) -> Guarded {
        Guarded {
            access_log,
            inner,
            reading: Reading::Head(HeadScan::default()),
            max_head,
            timeout,
            idle_timeout,
            idle: false,
            deadline: Some(Instant::now() + timeout),
            timer: None,
            next_head: AtomicBool::new(false),
        }
    }

    /// Scans newly read head bytes; `Some(reason)` when the head is over the limit.
    fn scan(&mut self, new: &[u8]) -> Option<Reason> {
        let Reading::Head(head) = &mut self.reading else {
            return None;
        };
        match head.feed(new, self.max_head) {
            Scanned::TooLarge => Some(Reason::RequestHeaderTooLarge),
            Scanned::End => {
                self.reading = Reading::Through;
                self.idle = false;
                self.deadline = None;
                self.timer = None;
                None
            }
            Scanned::More => {
                if head.started && self.idle {
                    // The first byte of a later head: its own deadline starts now.
                    self.idle = false;
                    self.deadline = Some(Instant::now() + self.timeout);
                    self.timer = None;
                }
                None
            }
        }
    }

    /// Best effort: the denial (as `crate::enforce::render` builds it, for a head no route
    /// was matched for) written straight to the socket before closing it, and reported.
    fn refuse(&mut self, cx: &mut Context<'_>, reason: Reason) -> io::Error {
        let denial = crate::enforce::Denial::new(None, reason);
        let (head, body) = crate::enforce::render::denial(None, &denial, None);
        let resp = crate::enforce::render::to_bytes(&head, &body);
        let _ = Pin::new(&mut *self.inner).poll_write(cx, &resp);
        let _ = Pin::new(&mut *self.inner).poll_flush(cx);
        crate::enforce::refused_head(self.access_log, reason);
        io::Error::new(io::ErrorKind::InvalidData, reason.as_str())
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reading == Reading::Through {
            if !this.next_head.swap(false, Ordering::AcqRel) {
                return Pin::new(&mut *this.inner).poll_read(cx, buf);
            }
            this.reading = Reading::Head(HeadScan::default());
            this.idle = true;
            this.deadline = Some(Instant::now() + this.idle_timeout);
            this.timer = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut *this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => match this.scan(&buf.filled()[before..]) {
                Some(r) => Poll::Ready(Err(this.refuse(cx, r))),
                None => Poll::Ready(Ok(())),
            },
            Poll::Pending => {
                let Some(deadline) = this.deadline else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let started = matches!(this.reading, Reading::Head(h) if h.started);
                let err = if started {
                    this.refuse(cx, Reason::RequestHeaderTimeout)
                } else {
                    io::Error::new(io::ErrorKind::TimedOut, "no request head")
                };
                Poll::Ready(Err(err))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
