//! Credential extraction: arbitrary headers and query strings never panic, and a present
//! credential is never empty, never over `max_token_bytes`, never taken from a repeated header.
#![no_main]
use arbitrary::Arbitrary;
use keygate::auth::{Extracted, RequestParts, Sources};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    headers: Vec<(String, Vec<u8>)>,
    query: Option<String>,
    socketio: Option<String>,
    /// A request body, read by `json_body` sources when it is JSON.
    body: Vec<u8>,
    limit: u8,
}

fn sources() -> Vec<Sources> {
    [
        "[{header: authorization, scheme: Bearer}, {query: api_key}]",
        "{cookie: session}",
        "[{header: x-user-token}, {query: user_token}]",
        "{socketio_auth: token, scheme: Bearer}",
        "[{json_body: /subscriberHash}, {header: x-hash}]",
    ]
    .iter()
    .map(|y| {
        let cfg: keygate::config::Sources = keygate::config::yaml::from_str(y, "seed").unwrap();
        Sources::compile(&cfg.0, "from").unwrap()
    })
    .collect()
}

fuzz_target!(|input: Input| {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &input.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_bytes(v),
        ) {
            headers.append(k, v);
        }
    }
    let auth: Option<serde_json::Map<String, serde_json::Value>> =
        input.socketio.as_ref().map(|t| {
            [("token".to_string(), serde_json::Value::from(t.as_str()))]
                .into_iter()
                .collect()
        });
    let body = keygate::json_body::parse(&input.body).ok();
    let parts = RequestParts {
        headers: &headers,
        query: input.query.as_deref(),
        params: &[],
        socketio_auth: auth.as_ref(),
        max_token_bytes: input.limit as usize + 1,
        method: &http::Method::POST,
        body: body.as_ref(),
    };
    for s in sources() {
        if let Extracted::Present(v) = s.extract(&parts) {
            assert!(!v.is_empty() && v.len() <= parts.max_token_bytes);
        }
    }
});
