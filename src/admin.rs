//! The admin port: `GET /healthz` (200 while serving), `GET /readyz` (200 once every key source
//! holds keys, else 503 with what is missing), `GET /metrics` (Prometheus text format).
//! Never proxied, never authenticated.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::proxy::State;

/// The admin HTTP app.
pub struct Admin {
    pub state: Arc<State>,
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .expect("valid response")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => respond(200, "application/json", br#"{"status":"ok"}"#.to_vec()),
            "/readyz" => {
                let rt = self.state.runtime.load();
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
                let body = serde_json::json!({
                    "ready": missing.is_empty(),
                    "missing_keys": missing,
                    "errors": errors,
                });
                let status = if missing.is_empty() { 200 } else { 503 };
                respond(status, "application/json", body.to_string().into_bytes())
            }
            "/metrics" => respond(
                200,
                "text/plain; version=0.0.4",
                crate::metrics::metrics().render(),
            ),
            _ => respond(
                404,
                "application/json",
                br#"{"error":"not_found"}"#.to_vec(),
            ),
        }
    }
}
