//! The admin port: `GET /healthz` (200 while the process serves), `GET /readyz` (200 once every
//! JWK-set provider holds keys; 503 with what is missing, and at once when SIGTERM starts the
//! drain), `GET /metrics` (Prometheus text format), `GET /.well-known/jwks.json` (the public
//! keys of `identity.assertion`; 404 without it). Never proxied, never authenticated.
//!
//! A small hyper server (`server::conn::http1` + `service_fn`) of its own rather than a pingora
//! service, because pingora stops every listening service at SIGTERM, and the admin port must
//! keep answering (`/readyz` 503) while in-flight requests drain.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::state::State;

fn json(status: StatusCode, v: serde_json::Value) -> (StatusCode, &'static str, Vec<u8>) {
    (status, "application/json", v.to_string().into_bytes())
}

/// Answers `GET path`: status, content type, body.
fn answer(state: &State, path: &str) -> (StatusCode, &'static str, Vec<u8>) {
    match path {
        "/healthz" => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        "/readyz" => {
            if state.draining.load(Ordering::Acquire) {
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"ready": false, "draining": true}),
                );
            }
            let rules = state.rules.load();
            let missing = rules.not_ready();
            // Why each JWK-set provider is not ready: its last fetch error.
            let errors: serde_json::Map<String, serde_json::Value> = rules
                .providers()
                .iter()
                .filter(|p| !p.ready())
                .map(|p| {
                    let why = p.last_error().unwrap_or_else(|| "not fetched yet".into());
                    (p.name().to_string(), why.into())
                })
                .collect();
            let status = if missing.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(
                status,
                serde_json::json!({"ready": missing.is_empty(), "missing_keys": missing, "errors": errors}),
            )
        }
        // issue 19: the public keys of `identity.assertion` (RFC 7517 §5).
        "/.well-known/jwks.json" => match &state.rules.load().identity.assertion {
            Some(a) => (StatusCode::OK, "application/json", a.jwks().to_vec()),
            None => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "not_found", "reason": "identity.assertion is not configured"}),
            ),
        },
        "/metrics" => {
            let m = crate::metrics::metrics();
            m.throttle_blocked
                .set(state.shared.blocked_addresses() as i64);
            let dropped = crate::access_log::dropped();
            m.access_log_dropped
                .inc_by(dropped.saturating_sub(m.access_log_dropped.get()));
            (StatusCode::OK, "text/plain; version=0.0.4", m.render())
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found"}),
        ),
    }
}

fn respond(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match *req.method() {
        Method::GET | Method::HEAD => answer(state, req.uri().path()),
        _ => json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "method_not_allowed"}),
        ),
    };
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(body))
        .expect("a valid response")
}

/// Serves the admin port until the process exits (pingora's shutdown broadcast is ignored on
/// purpose: see the module docs). Each connection gets 10 s for a request head and 30 s in all.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &req)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(sock), svc);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}
