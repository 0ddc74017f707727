//! The config the attack tests run: DokaAI (customer JWT over HTTP and Socket.IO, server
//! client secrets) + Knock (public key + user token, the feed bound to its user) + Notifizz
//! (HMAC widget token), an admin API, public GET/POST items beside an admin-only DELETE of the
//! same path (what a method override aims at), an observed route, and an anonymous catch-all
//! for a public site, which is what turns every matching mistake into a bypass.

use serde_json::Value;

use super::*;

/// Route paths that need credentials, as a backend sees them (lower-case prefixes).
pub(crate) const PROTECTED: [&str; 6] =
    ["/api/v1", "/v1/users/", "/v1/messages/", "/widget", "/v1/events", "/admin"];

/// The Socket.IO path.
pub(crate) const SIO: &str = "/api/v1/wss/socket.io";

/// The attack config body (see the module docs); limits are small so tests are quick.
pub(crate) fn attack_config() -> String {
    format!(
        r#"identity:
  claims: {{ workspace_id: x-auth-workspace-id }}
  socketio_key: identity
limits:
  socketio_connect_timeout_seconds: 2
  request_header_timeout_seconds: 2
  max_request_header_bytes: 16384
cors: {{ allowed_origins: ["https://app.test"], allowed_headers: [authorization, content-type] }}
authenticators:
  doka_customer:
    type: jwt
    from: [{{ header: authorization, scheme: Bearer }}, {{ socketio_auth: token, scheme: Bearer }}]
    algorithms: [RS256]
    keys: [{{ kid: "{DOKA_KID}", pem_file: "{rsa}" }}]
    require: [sub, exp]
    claims: {{ type: customer, workspace_id: [ONAVZK8J] }}
  doka_server:
    type: client_secret
    key_from: {{ header: x-client-key }}
    secret_from: {{ header: x-client-secret }}
    clients: [{{ name: billing, key: "ck_live_7f3a", secret: "billing-secret-value" }}]
  knock_public:
    type: public_key
    from: [{{ header: authorization, scheme: Bearer }}, {{ query: api_key }}]
    keys: [{{ name: web, value: "pk_test_1" }}]
  knock_user:
    type: jwt
    from: [{{ header: x-knock-user-token }}, {{ query: user_token }}]
    algorithms: [RS256]
    keys: [{{ pem_file: "{rsa}" }}]
    require: [sub, iat, exp]
  widget_hmac:
    type: hmac_token
    secret: "{HMAC_SECRET}"
    token_from: {{ header: x-user-token }}
    user_id_from: {{ header: x-user-id }}
routes:
  - {{ name: health, path: /healthz, auth: anonymous }}
  - {{ name: socketio, path: "{SIO}/{{*rest}}", socketio: true, auth: [doka_customer] }}
  - {{ name: customer_api, path: "/api/v1/{{*rest}}", auth: [doka_customer] }}
  - name: knock_feed
    path: "/v1/users/{{user_id}}/feeds/{{feed_id}}"
    methods: [GET]
    auth: [[knock_public, knock_user]]
    bind: {{ user_id: "{{user_id}}" }}
  - {{ name: knock_batch, path: "/v1/messages/batch/{{status}}", methods: [POST], auth: [[knock_public, knock_user]] }}
  - {{ name: widget, path: "/widget/{{*rest}}", auth: [widget_hmac] }}
  - {{ name: events, path: "/v1/events/{{*rest}}", methods: [POST], auth: [doka_server] }}
  - {{ name: admin, path: "/admin/{{*rest}}", methods: [GET], auth: [doka_customer] }}
  - {{ name: items_public, path: "/items/{{id}}", methods: [GET, POST], auth: anonymous }}
  - {{ name: items_admin, path: "/items/{{id}}", methods: [DELETE], auth: [doka_server] }}
  - {{ name: observed, path: "/observed/{{*rest}}", auth: [doka_customer], enforce: observe }}
  - {{ name: site, path: "/{{*rest}}", methods: [GET], auth: anonymous }}
unmatched: anonymous
"#,
        rsa = fixture("rsa.pub"),
    )
}

/// keygate with [`attack_config`] in front of `upstream`.
pub(crate) fn attack_keygate(upstream: std::net::SocketAddr) -> Keygate {
    Keygate::builder().config(attack_config()).upstream(upstream).start()
}

/// A valid DokaAI customer token for `sub`.
pub(crate) fn customer_token(sub: &str) -> String {
    sign("rsa.key", "RS256", Some(DOKA_KID), customer_claims(sub, "ONAVZK8J"))
}

/// Whether the path of a request a backend received is on a protected route: by the route
/// templates, percent-decoded, case-insensitively and ignoring one trailing `/` (as keygate
/// and Express's default router read paths); or, for Express, when a protected handler ran.
pub(crate) fn is_protected(record: &Value) -> bool {
    if let Some(h) = record["handler"].as_str() {
        if !matches!(h, "fallback" | "health" | "public_items") {
            return true;
        }
    }
    let method = record["method"].as_str().unwrap_or("");
    let url = record["url"].as_str().unwrap_or("");
    let raw = url.split(['?', '#']).next().unwrap_or("");
    let decoded =
        percent_encoding::percent_decode_str(raw).decode_utf8_lossy().to_ascii_lowercase();
    let path = match decoded.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => decoded.clone(),
    };
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    if method.eq_ignore_ascii_case("DELETE") && segs.first() == Some(&"items") {
        return true;
    }
    PROTECTED.iter().any(|t| {
        let tsegs: Vec<&str> = t.split('/').skip(1).collect();
        match tsegs.split_last() {
            Some((&"**", prefix)) => {
                segs.len() >= prefix.len() && prefix.iter().zip(&segs).all(|(p, s)| p == s)
            }
            _ => {
                segs.len() == tsegs.len()
                    && tsegs.iter().zip(&segs).all(|(p, s)| *p == "*" && !s.is_empty() || p == s)
            }
        }
    })
}

/// The value of header `name` in a backend's record (`headers` as an object or as pairs).
pub(crate) fn header_of<'a>(record: &'a Value, name: &str) -> Vec<&'a str> {
    match &record["headers"] {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| v.as_str())
            .collect(),
        Value::Array(pairs) => pairs
            .iter()
            .filter(|p| p[0].as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
            .filter_map(|p| p[1].as_str())
            .collect(),
        _ => Vec::new(),
    }
}
