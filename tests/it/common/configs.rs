//! The config most tests run: every authenticator kind, fixture keys, spec-like routes.

use super::echo::{self, Echo};
use super::{fixture, read_fixture, Keygate, DOKA_KID, HMAC_SECRET, HS_SECRET};

/// The config used by most tests: every authenticator kind, fixture keys, spec-like routes.
pub(crate) fn full_config(mode: &str) -> String {
    let jwk = read_fixture("rsa_other.jwk.json").replace('\n', " ");
    format!(
        r#"mode: {mode}
cors: {{ allowed_origins: ["https://app.test"], allowed_headers: [authorization, content-type, x-knock-user-token], allow_credentials: true }}
identity:
  claims: {{ workspace_id: x-auth-workspace-id, email: x-auth-user-email }}
authenticators:
  knock_public:
    type: public_key
    from: [{{ header: authorization, scheme: Bearer }}, {{ query: api_key }}]
    keys: [{{ name: web, value: "pk_test_1" }}]
    user_id_from: {{ path_param: user_id }}
  knock_user:
    type: jwt
    from: [{{ header: x-knock-user-token }}, {{ query: user_token }}]
    algorithms: [RS256]
    keys: [{{ pem_file: "{rsa}" }}]
    require: [sub, iat, exp]
  widget_hmac:
    type: hmac_token
    secret: "${{KG_TEST_HMAC_SECRET}}"
    token_from: {{ header: x-user-token }}
    user_id_from: {{ header: x-user-id }}
  widget_concat:
    type: hmac_token
    scheme: sha256_concat
    secret_file: "{secret_file}"
    token_from: {{ header: x-user-hash }}
    user_id_from: {{ header: x-user-id }}
  doka_server:
    type: client_secret
    key_from: {{ header: x-client-key }}
    secret_from: {{ header: x-client-secret }}
    clients:
      - {{ name: billing, key: "ck_live_7f3a", secret_sha256: "{billing_sha}" }}
      - {{ name: crm, key: "ck_live_91b2", secret: "crm-secret-value" }}
  events_key:
    type: api_key
    from: {{ header: authorization, scheme: Bearer }}
    keys: [{{ name: ingest, sha256: "{ingest_sha}" }}]
  doka_customer:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{{ kid: "{DOKA_KID}", pem_file: "{rsa}" }}]
    require: [sub, exp]
    max_lifetime_seconds: 900
    claims: {{ type: customer, workspace_id: [ONAVZK8J, SECOND01] }}
  multi:
    type: jwt
    from: {{ header: x-multi-token }}
    algorithms: [RS256, PS256, ES256, ES384, EdDSA, HS256]
    issuers: ["https://issuer.test", "issuer.test"]
    audiences: [aud-1, aud-2]
    leeway_seconds: 5
    keys:
      - {{ kid: rsa, pem_file: "{rsa}" }}
      - {{ kid: ec256, pem_file: "{ec256}" }}
      - {{ kid: ec384, pem_file: "{ec384}" }}
      - {{ kid: ed, pem_file: "{ed}" }}
      - {{ kid: hs, secret: "{HS_SECRET}" }}
      - {{ jwk: {jwk} }}
      - {{ jwks_file: "{jwks}" }}
  google:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    jwks_url: "http://127.0.0.1:9/certs"
    issuers: ["https://accounts.google.com"]
    algorithms: [RS256]
routes:
  - {{ name: health, path: /healthz, auth: anonymous }}
  - name: knock_feed
    path: "/v1/users/{{user_id}}/feeds/{{feed_id}}"
    methods: [GET]
    auth: [[knock_public, knock_user]]
    bind: {{ user_id: "{{user_id}}" }}
  - name: knock_batch
    path: "/v1/messages/batch/{{status}}"
    methods: [POST]
    auth: [[knock_public, knock_user]]
  - {{ name: widget, path: "/widget/{{*rest}}", auth: [widget_hmac, widget_concat] }}
  - {{ name: events, path: "/v1/events/{{*rest}}", methods: [POST], auth: [doka_server, events_key] }}
  - {{ name: customer_api, path: "/api/v1/{{*rest}}", auth: [doka_customer] }}
  - name: workspace_items
    path: "/workspaces/{{ws}}/items"
    auth: [doka_customer]
    bind: {{ claims.workspace_id: "{{ws}}" }}
  - {{ name: multi, path: "/multi/{{*rest}}", auth: [multi] }}
  - {{ name: google, path: "/google/{{*rest}}", auth: [google] }}
  - {{ name: open, path: "/public/{{*rest}}", auth: anonymous }}
"#,
        rsa = fixture("rsa.pub"),
        ec256 = fixture("ec256.pub"),
        ec384 = fixture("ec384.pub"),
        ed = fixture("ed25519.pub"),
        jwks = fixture("jwks.json"),
        secret_file = fixture("concat_secret.txt"),
        billing_sha = keygate::token::hash_hex(b"billing-secret-value"),
        ingest_sha = keygate::token::hash_hex(b"ek_ingest_1"),
    )
}

/// Echo upstream + keygate with [`full_config`].
pub(crate) fn full(mode: &str) -> (Echo, Keygate) {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder()
        .config(full_config(mode))
        .upstream(up.addr)
        .env("KG_TEST_HMAC_SECRET", HMAC_SECRET)
        .start();
    (up, kg)
}
