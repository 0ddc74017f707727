//! `keygate demo`: keygate in front of a built-in `echo` upstream, with a built-in config that
//! exercises every authenticator kind (its RS256 key pair generated at start), a self-check that
//! sends every scenario once and prints a pass/fail table ([`check`]), and printed,
//! ready-to-paste curl commands, each with the result it gives. Behind the `demo` cargo feature
//! (on by default): a production build can leave it out with `--no-default-features`.

pub mod check;
mod echo;

use aws_lc_rs::encoding::AsDer;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Map, Value};

use crate::config::HmacScheme;
use crate::ruleset::Loaded;
use crate::token::{now, sign};

/// Demo credentials. Public demo values, not secrets.
const PUBLIC_KEY: &str = "pk_demo_4f2a9c71";
const HMAC_SECRET: &str = "demo-notifizz-secret-2f8e1c";
const CLIENT_KEY: &str = "ck_demo_billing";
const CLIENT_SECRET: &str = "cs_demo_7d3e0b55";
const EVENTS_KEY: &str = "ek_demo_ingest_9a1f";
const DOKA_KID: &str = "a89c4bdd-60d9-4803-ac2d-c7a06c56074e";

/// A generated RS256 key pair: private PKCS#8 PEM, public SPKI PEM.
pub fn generate_rsa() -> Result<(String, String), String> {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| "RSA key generation failed".to_string())?;
    let private =
        AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).map_err(|_| "cannot encode key")?;
    let public = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
        aws_lc_rs::signature::KeyPair::public_key(&kp),
    )
    .map_err(|_| "cannot encode key")?;
    let pem = |tag: &str, der: &[u8]| pem::encode(&pem::Pem::new(tag, der.to_vec()));
    Ok((
        pem("PRIVATE KEY", private.as_ref()),
        pem("PUBLIC KEY", public.as_ref()),
    ))
}

/// The demo config, with the generated public key inlined.
pub fn config_yaml(listen: &str, admin: &str, upstream: &str, public_pem: &str) -> String {
    let pem_block: String = public_pem
        .lines()
        .map(|l| format!("          {l}\n"))
        .collect();
    format!(
        r#"version: 1
mode: production
listen: "{listen}"
admin_listen: "{admin}"
upstream: {{ url: "http://{upstream}" }}
shutdown_grace_seconds: 2
identity:
  claims: {{ workspace_id: x-auth-workspace-id }}
cors:
  allowed_origins: ["http://localhost:3000"]
  allowed_headers: [authorization, content-type, x-knock-user-token, x-user-id, x-user-token]
authenticators:
  knock_public:
    type: public_key
    from: [{{ header: authorization, scheme: Bearer }}, {{ query: api_key }}]
    keys: [{{ name: web, value: "{PUBLIC_KEY}" }}]
    user_id_from: {{ path_param: user_id }}
  knock_user:
    type: jwt
    from: [{{ header: x-knock-user-token }}, {{ query: user_token }}]
    algorithms: [RS256]
    require: [sub, iat, exp]
    keys:
      - pem: |
{pem_block}  notifizz_widget:
    type: hmac_token
    secret: "{HMAC_SECRET}"
    token_from: {{ header: x-user-token }}
    user_id_from: {{ header: x-user-id }}
  doka_server:
    type: client_secret
    key_from: {{ header: x-client-key }}
    secret_from: {{ header: x-client-secret }}
    clients: [{{ name: billing, key: "{CLIENT_KEY}", secret: "{CLIENT_SECRET}" }}]
  events_key:
    type: api_key
    from: {{ header: authorization, scheme: Bearer }}
    keys: [{{ name: ingest, value: "{EVENTS_KEY}" }}]
  doka_customer:
    type: jwt
    from: [{{ header: authorization, scheme: Bearer }}, {{ socketio_auth: token, scheme: Bearer }}]
    algorithms: [RS256]
    keys:
      - kid: "{DOKA_KID}"
        pem: |
{pem_block}    require: [sub, exp]
    max_lifetime_seconds: 900
    claims: {{ type: customer, workspace_id: [ONAVZK8J] }}
routes:
  - {{ name: health, path: /healthz, auth: anonymous }}
  - name: knock_feed
    path: "/v1/users/{{user_id}}/feeds/{{feed_id}}"
    methods: [GET]
    auth: [[knock_public, knock_user]]
    bind: {{ user_id: "{{user_id}}" }}
  - name: knock_messages
    path: "/v1/messages/batch/{{status}}"
    methods: [POST]
    auth: [[knock_public, knock_user]]
  - {{ name: widget, path: "/widget/{{*rest}}", auth: [notifizz_widget] }}
  - {{ name: events, path: "/v1/events/{{*rest}}", methods: [POST], auth: [doka_server, events_key] }}
  - {{ name: socketio, path: "/api/v1/wss/socket.io/{{*rest}}", socketio: true, auth: [doka_customer] }}
  - {{ name: customer_api, path: "/api/v1/{{*rest}}", auth: [doka_customer] }}
unmatched: deny
"#
    )
}

/// One scenario: a request, what it shows and the answer it must get. The self-check sends it
/// ([`check`]); the printed curl command is rendered from it, so both always agree.
pub struct Example {
    /// `200 user-1`, `401 token_expired`, ...: the status, then the user id the backend got
    /// (`-` for none) or the denial reason.
    pub expect: &'static str,
    /// What the example shows.
    pub what: &'static str,
    /// The request method.
    pub method: &'static str,
    /// Path and query, sent as written (dot segments included).
    pub target: String,
    /// Request headers.
    pub headers: Vec<(&'static str, String)>,
    /// A request body (JSON), if any.
    pub body: Option<&'static str>,
}

impl Example {
    /// The curl command for a proxy at `base` (`http://127.0.0.1:8080`).
    pub fn curl(&self, base: &str) -> String {
        let mut c = String::from("curl -s");
        if self.method != "GET" {
            c += &format!(" -X {}", self.method);
        }
        if self.target.contains("/../") || self.target.contains("/./") {
            c += " --path-as-is";
        }
        c += &format!(" '{base}{}'", self.target);
        for (k, v) in &self.headers {
            c += &format!(" -H '{k}: {v}'");
        }
        if let Some(b) = self.body {
            c += &format!(" -d '{b}'");
        }
        c
    }
}

fn jwt(key: &EncodingKey, kid: Option<&str>, claims: Value) -> String {
    let map: Map<String, Value> = serde_json::from_value(claims).expect("object");
    sign(key, Algorithm::RS256, kid, &map).expect("demo token signs")
}

/// The scenarios, with tokens signed by `private_pem`.
pub fn examples(private_pem: &str) -> Vec<Example> {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("generated key");
    let t = now();
    let user = jwt(
        &key,
        None,
        json!({"sub": "user-1", "iat": t, "exp": t + 3600}),
    );
    let expired = jwt(
        &key,
        None,
        json!({"sub": "user-1", "iat": t - 7200, "exp": t - 3600}),
    );
    let cust = |ws: &str| {
        let claims = json!({"sub": "cust-42", "type": "customer", "workspace_id": ws, "iat": t, "exp": t + 900});
        format!("Bearer {}", jwt(&key, Some(DOKA_KID), claims))
    };
    let hmac = hex::encode(crate::auth::hmac_token::compute(
        HmacScheme::HmacSha256,
        HMAC_SECRET.as_bytes(),
        b"user-1",
    ));
    let pk = ("Authorization", format!("Bearer {PUBLIC_KEY}"));
    let utok = |tok: &str| ("X-Knock-User-Token", tok.to_string());
    let h = |k: &'static str, v: &str| (k, v.to_string());
    let ex = |expect, what, method, target: &str, headers: Vec<(&'static str, String)>| Example {
        expect,
        what,
        method,
        target: target.to_string(),
        headers,
        body: None,
    };
    let with_body = |e: Example, body| Example {
        body: Some(body),
        ..e
    };
    let feed = "/v1/users/user-1/feeds/feed-1";
    vec![
        ex("200 user-1", "Knock feed: public key + user token; the echo shows x-auth-user-id: user-1",
            "GET", feed, vec![pk.clone(), utok(&user)]),
        with_body(ex("200 user-1", "Knock mark-as-read: POST /v1/messages/batch/read",
            "POST", "/v1/messages/batch/read", vec![pk.clone(), utok(&user), h("Content-Type", "application/json")]),
            r#"{"message_ids":["m1"]}"#),
        ex("403 identity_mismatch", "user-1's token on user-2's feed",
            "GET", "/v1/users/user-2/feeds/feed-1", vec![pk.clone(), utok(&user)]),
        ex("401 missing_credentials", "public key alone (production mode needs the user token)",
            "GET", feed, vec![pk.clone()]),
        ex("401 token_expired", "an expired user token", "GET", feed, vec![pk.clone(), utok(&expired)]),
        ex("200 user-1", "Notifizz widget: HMAC user token beside the user id; a spoofed X-Auth-User-Id is replaced",
            "GET", "/widget/inbox", vec![h("X-User-Id", "user-1"), h("X-User-Token", &hmac), h("X-Auth-User-Id", "admin")]),
        ex("401 invalid_hmac", "the same token for another user",
            "GET", "/widget/inbox", vec![h("X-User-Id", "user-2"), h("X-User-Token", &hmac)]),
        with_body(ex("200 -", "DokaAI server-to-server: client key + secret",
            "POST", "/v1/events/track", vec![h("X-Client-Key", CLIENT_KEY), h("X-Client-Secret", CLIENT_SECRET)]), "{}"),
        with_body(ex("401 invalid_client", "wrong client secret",
            "POST", "/v1/events/track", vec![h("X-Client-Key", CLIENT_KEY), h("X-Client-Secret", "wrong")]), "{}"),
        with_body(ex("200 -", "Notivize-style ingestion API key",
            "POST", "/v1/events/track", vec![h("Authorization", &format!("Bearer {EVENTS_KEY}"))]), "{}"),
        ex("200 cust-42", "DokaAI customer JWT (kid, type=customer, workspace ONAVZK8J)",
            "GET", "/api/v1/notifications", vec![("Authorization", cust("ONAVZK8J"))]),
        ex("401 claim_mismatch", "customer JWT for a workspace that is not allowed",
            "GET", "/api/v1/notifications", vec![("Authorization", cust("OTHERWS1"))]),
        ex("405 method_not_allowed", "DELETE on the GET-only feed route (never another route)",
            "DELETE", feed, vec![]),
        ex("204 -", "a browser's CORS preflight from the allowed origin: answered by keygate, never forwarded",
            "OPTIONS", feed, vec![h("Origin", "http://localhost:3000"), h("Access-Control-Request-Method", "GET"),
                h("Access-Control-Request-Headers", "authorization, x-knock-user-token")]),
        ex("400 websocket_required", "Engine.IO long-polling on the Socket.IO route (clients use transports: [\"websocket\"])",
            "GET", "/api/v1/wss/socket.io/?EIO=4&transport=polling", vec![]),
        ex("403 no_route", "a path no route matches (deny by default)", "GET", "/internal/admin", vec![]),
        ex("400 malformed_path", "a dot-segment path trick", "GET", "/widget/../api/v1/notifications", vec![]),
        ex("200 -", "anonymous route", "GET", "/healthz", vec![]),
    ]
}

/// Builds everything `keygate demo` runs: the echo upstream (started, serving on its own thread
/// for the life of the process; its address is returned), the compiled config and the examples
/// to print.
pub fn prepare(
    listen: &str,
    admin: &str,
) -> Result<(Loaded, std::net::SocketAddr, Vec<Example>), String> {
    let echo =
        echo::spawn("127.0.0.1:0").map_err(|e| format!("cannot start echo upstream: {e}"))?;
    let (private, public) = generate_rsa()?;
    let yaml = config_yaml(listen, admin, &echo.addr.to_string(), &public);
    let rt = crate::ruleset::load_str(&yaml, "<demo config>").map_err(|e| e.to_string())?;
    Ok((rt, echo.addr, examples(&private)))
}
