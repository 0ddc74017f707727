//! `keygate demo`: keygate in front of a built-in [`echo`] upstream, with a built-in config that
//! exercises every authenticator kind (its RS256 key pair generated at start), and printed,
//! ready-to-paste curl commands, each with the result it gives. Behind the `demo` cargo feature
//! (on by default): a production build can leave it out with `--no-default-features`.

pub mod echo;

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

/// One printed example: what to expect and the curl command.
pub struct Example {
    /// `200 user-1`, `401 token_expired`, ...: status, then the user id or reason.
    pub expect: String,
    /// What the example shows.
    pub what: &'static str,
    /// The command to paste.
    pub curl: String,
}

fn jwt(key: &EncodingKey, kid: Option<&str>, claims: Value) -> String {
    let map: Map<String, Value> = serde_json::from_value(claims).expect("object");
    sign(key, Algorithm::RS256, kid, &map).expect("demo token signs")
}

/// The examples for a proxy at `base` (`http://127.0.0.1:8080`), signed with `private_pem`.
pub fn examples(base: &str, private_pem: &str) -> Vec<Example> {
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
        jwt(
            &key,
            Some(DOKA_KID),
            json!({"sub": "cust-42", "type": "customer", "workspace_id": ws, "iat": t, "exp": t + 900}),
        )
    };
    let hmac = hex::encode(crate::auth::hmac_token::compute(
        HmacScheme::HmacSha256,
        HMAC_SECRET.as_bytes(),
        b"user-1",
    ));
    let pk = format!("-H 'Authorization: Bearer {PUBLIC_KEY}'");
    let ex = |expect: &str, what: &'static str, curl: String| Example {
        expect: expect.into(),
        what,
        curl,
    };
    vec![
        ex("200 user-1", "Knock feed: public key + user token; the echo shows x-auth-user-id: user-1",
            format!("curl -s {base}/v1/users/user-1/feeds/feed-1 {pk} -H 'X-Knock-User-Token: {user}'")),
        ex("200 user-1", "Knock mark-as-read: POST /v1/messages/batch/read",
            format!("curl -s -X POST {base}/v1/messages/batch/read {pk} -H 'X-Knock-User-Token: {user}' -H 'Content-Type: application/json' -d '{{\"message_ids\":[\"m1\"]}}'")),
        ex("403 identity_mismatch", "user-1's token on user-2's feed",
            format!("curl -s {base}/v1/users/user-2/feeds/feed-1 {pk} -H 'X-Knock-User-Token: {user}'")),
        ex("401 missing_credentials", "public key alone (production mode needs the user token)",
            format!("curl -s {base}/v1/users/user-1/feeds/feed-1 {pk}")),
        ex("401 token_expired", "an expired user token",
            format!("curl -s {base}/v1/users/user-1/feeds/feed-1 {pk} -H 'X-Knock-User-Token: {expired}'")),
        ex("200 user-1", "Notifizz widget: HMAC user token beside the user id; a spoofed X-Auth-User-Id is replaced",
            format!("curl -s {base}/widget/inbox -H 'X-User-Id: user-1' -H 'X-User-Token: {hmac}' -H 'X-Auth-User-Id: admin'")),
        ex("401 invalid_hmac", "the same token for another user",
            format!("curl -s {base}/widget/inbox -H 'X-User-Id: user-2' -H 'X-User-Token: {hmac}'")),
        ex("200 -", "DokaAI server-to-server: client key + secret",
            format!("curl -s -X POST {base}/v1/events/track -H 'X-Client-Key: {CLIENT_KEY}' -H 'X-Client-Secret: {CLIENT_SECRET}' -d '{{}}'")),
        ex("401 invalid_client", "wrong client secret",
            format!("curl -s -X POST {base}/v1/events/track -H 'X-Client-Key: {CLIENT_KEY}' -H 'X-Client-Secret: wrong' -d '{{}}'")),
        ex("200 -", "Notivize-style ingestion API key",
            format!("curl -s -X POST {base}/v1/events/track -H 'Authorization: Bearer {EVENTS_KEY}' -d '{{}}'")),
        ex("200 cust-42", "DokaAI customer JWT (kid, type=customer, workspace ONAVZK8J)",
            format!("curl -s {base}/api/v1/notifications -H 'Authorization: Bearer {}'", cust("ONAVZK8J"))),
        ex("401 claim_mismatch", "customer JWT for a workspace that is not allowed",
            format!("curl -s {base}/api/v1/notifications -H 'Authorization: Bearer {}'", cust("OTHERWS1"))),
        ex("405 method_not_allowed", "DELETE on the GET-only feed route (never another route)",
            format!("curl -s -X DELETE {base}/v1/users/user-1/feeds/feed-1")),
        ex("204 -", "a browser's CORS preflight from the allowed origin: answered by keygate, never forwarded",
            format!("curl -s -X OPTIONS {base}/v1/users/user-1/feeds/feed-1 -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: GET' -H 'Access-Control-Request-Headers: authorization, x-knock-user-token'")),
        ex("400 websocket_required", "Engine.IO long-polling on the Socket.IO route (clients use transports: [\"websocket\"])",
            format!("curl -s '{base}/api/v1/wss/socket.io/?EIO=4&transport=polling'")),
        ex("403 no_route", "a path no route matches (deny by default)",
            format!("curl -s {base}/internal/admin")),
        ex("400 malformed_path", "a dot-segment path trick",
            format!("curl -s --path-as-is {base}/widget/../api/v1/notifications")),
        ex("200 -", "anonymous route",
            format!("curl -s {base}/healthz")),
    ]
}

/// Builds everything `keygate demo` runs: the echo upstream, the compiled config and the
/// examples to print.
pub fn prepare(listen: &str, admin: &str) -> Result<(Loaded, echo::Echo, Vec<Example>), String> {
    let echo =
        echo::spawn("127.0.0.1:0").map_err(|e| format!("cannot start echo upstream: {e}"))?;
    let (private, public) = generate_rsa()?;
    let yaml = config_yaml(listen, admin, &echo.addr.to_string(), &public);
    let rt = crate::ruleset::load_str(&yaml, "<demo config>").map_err(|e| e.to_string())?;
    let base = format!("http://{listen}");
    Ok((rt, echo, examples(&base, &private)))
}
