//! The admin port: `GET /healthz` (200 while the process serves), `GET /readyz` (200 once every
//! JWK-set provider holds keys; 503 with what is missing, and at once when SIGTERM starts the
//! drain), `GET /metrics` (Prometheus text format). Never proxied, never authenticated.
//!
//! It is a small HTTP/1.1 server of its own rather than a pingora service, because pingora stops
//! every listening service at SIGTERM, and the admin port must keep answering (`/readyz` 503)
//! while in-flight requests drain.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::state::State;

/// An admin response: status, content type, body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// Response body.
    pub body: Vec<u8>,
}

fn json(status: u16, v: serde_json::Value) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: v.to_string().into_bytes(),
    }
}

/// Answers `GET path`.
pub fn respond(state: &State, path: &str) -> Reply {
    match path {
        "/healthz" => json(200, serde_json::json!({"status": "ok"})),
        "/readyz" => {
            if state.draining.load(Ordering::Acquire) {
                return json(503, serde_json::json!({"ready": false, "draining": true}));
            }
            let rt = state.rules.load();
            let missing = rt.not_ready();
            // Why each JWK-set provider is not ready: its last fetch error.
            let errors: serde_json::Map<String, serde_json::Value> = rt
                .providers()
                .iter()
                .filter(|p| !p.ready())
                .map(|p| {
                    let why = p.last_error().unwrap_or_else(|| "not fetched yet".into());
                    (p.name().to_string(), why.into())
                })
                .collect();
            let status = if missing.is_empty() { 200 } else { 503 };
            json(
                status,
                serde_json::json!({"ready": missing.is_empty(), "missing_keys": missing, "errors": errors}),
            )
        }
        "/metrics" => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: crate::metrics::metrics().render(),
        },
        _ => json(404, serde_json::json!({"error": "not_found"})),
    }
}

/// Serves the admin port until the process exits (pingora's shutdown broadcast is ignored on
/// purpose: see the module docs).
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(sock, &state)).await;
        });
    }
}

async fn handle(mut sock: TcpStream, state: &State) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > 16 * 1024 {
            return Ok(());
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let reply = match req.parse(&buf) {
        Ok(httparse::Status::Complete(_))
            if req.method == Some("GET") || req.method == Some("HEAD") =>
        {
            let path = req.path.unwrap_or("/").split('?').next().unwrap_or("/");
            respond(state, path)
        }
        Ok(httparse::Status::Complete(_)) => {
            json(405, serde_json::json!({"error": "method_not_allowed"}))
        }
        _ => json(400, serde_json::json!({"error": "bad_request"})),
    };
    let reason = match reply.status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    if req.method != Some("HEAD") {
        sock.write_all(&reply.body).await?;
    }
    sock.shutdown().await
}
