//! The vendor examples (`examples/*.yaml`) end to end with tokens made as each vendor makes them
//! (`tests/node/vendor_tokens.mjs`: @knocklabs/node's `signUserToken`, Novu's and MagicBell's
//! HMAC recipes, SuprSend's and Courier's JWT shapes with jose), and the bodies keygate reads
//! (`bind_json`, `json_body`): refused, or forwarded byte for byte with Content-Length and
//! chunked framing.

use crate::common::*;

/// `examples/<name>` as a test body: its own listeners and upstream removed (the harness adds
/// them), `keys/` paths made absolute.
fn example(name: &str) -> String {
    let text =
        std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text.lines()
        .filter(|l| {
            !["version:", "listen:", "admin_listen:", "upstream:"].iter().any(|p| l.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A token from `tests/node/vendor_tokens.mjs`.
fn vendor_token(args: &[&str]) -> String {
    let lines = programs::run("vendor_tokens.mjs", args);
    lines[0]["token"].as_str().expect("a token").to_string()
}

fn start(example_name: &str, env: &[(&str, &str)]) -> (Echo, Keygate) {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let mut b = Keygate::builder().config(example(example_name)).upstream(up.addr);
    for (k, v) in env {
        b = b.env(k, v);
    }
    (up, b.start())
}

const KNOCK_FEED: &str = "/v1/users/user-1/feeds/feed-1";

#[test]
fn knock_grants_allow_only_the_granted_users_feed() {
    let key = fixture("ec256.key");
    let env = [
        ("KNOCK_PUBLIC_API_KEY", "pk_test_1"),
        ("KNOCK_SIGNING_KEY_FILE", &fixture("rsa.pub")),
        ("KEYGATE_ASSERTION_KEY_FILE", &key),
    ];
    let (up, kg) = start("knock_grants.yaml", &env);
    let granted = vendor_token(&["knock", "user-1", &fixture("rsa.key"), "user-1"]);
    let feed = |path: &str, tok: &str| {
        kg.get(path, &[("Authorization", "Bearer pk_test_1"), ("X-Knock-User-Token", tok)])
    };
    let r = feed(KNOCK_FEED, &granted);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("user-1"));
    assert!(r.upstream_header("x-auth-assertion").is_some());
    let before = up.hits();
    feed("/v1/users/user-2/feeds/feed-1", &granted).assert_denied(403, "condition_failed");
    // A token granting nothing, and one granting user-2 only, do not read user-1's feed.
    let none = vendor_token(&["knock", "user-1", &fixture("rsa.key")]);
    feed(KNOCK_FEED, &none).assert_denied(403, "condition_failed");
    let other = vendor_token(&["knock", "user-1", &fixture("rsa.key"), "user-2"]);
    feed(KNOCK_FEED, &other).assert_denied(403, "condition_failed");
    assert_eq!(up.hits(), before);
    // A token granting user-2 reads user-2's feed (the grant, not the subject, decides here).
    assert_eq!(feed("/v1/users/user-2/feeds/f", &other).status, 200);

    // Knock's bulk endpoint: the body's user_ids must all be the token's user.
    let bh = [
        ("Authorization", "Bearer pk_test_1"),
        ("X-Knock-User-Token", granted.as_str()),
        ("Content-Type", "application/json"),
    ];
    let bulk = "/v1/channels/c1/messages/bulk/read";
    let ok = br#"{"user_ids": ["user-1", "user-1"], "archived": "exclude"}"#;
    let r = kg.post(bulk, &bh, ok);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body_sha256"], hex::encode(keygate::secret::sha256(ok)));
    let before = up.hits();
    kg.post(bulk, &bh, br#"{"user_ids": ["user-1", "user-2"]}"#)
        .assert_denied(403, "identity_mismatch");
    kg.post(bulk, &bh, br#"{"recipients": ["user-2"]}"#).assert_denied(403, "identity_mismatch");
    assert_eq!(up.hits(), before);
}

#[test]
fn novu_subscriber_hash_in_the_body() {
    let secret = "novu-secret-key-123";
    let (up, kg) =
        start("novu.yaml", &[("NOVU_SECRET_KEY", secret), ("NOVU_JWT_SECRET", HS_SECRET)]);
    let hash = vendor_token(&["novu", "sub-1", secret]);
    let body = format!(
        r#"{{"applicationIdentifier":"app-1","subscriberId":"sub-1","subscriberHash":"{hash}"}}"#
    );
    let json = [("Content-Type", "application/json")];
    let r = kg.post("/v1/inbox/session", &json, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("sub-1"));
    assert_eq!(r.json()["body_len"], body.len());
    assert_eq!(r.json()["body_sha256"], hex::encode(keygate::secret::sha256(body.as_bytes())));
    let before = up.hits();
    let forged = body.replace("\"sub-1\"", "\"sub-2\"");
    kg.post("/v1/inbox/session", &json, forged.as_bytes()).assert_denied(401, "invalid_hmac");
    kg.post("/v1/inbox/session", &json, br#"{"subscriberId":"sub-1"}"#)
        .assert_denied(401, "missing_credentials");
    kg.post("/v1/inbox/session", &[("Content-Type", "text/plain")], body.as_bytes())
        .assert_denied(400, "malformed_body");
    assert_eq!(up.hits(), before);
}

#[test]
fn magicbell_base64_hmac_of_the_external_id_else_the_email() {
    let secret = "magicbell-api-secret";
    let (up, kg) = start(
        "magicbell.yaml",
        &[("MAGICBELL_API_KEY", "pk_mb"), ("MAGICBELL_API_SECRET", secret)],
    );
    let by_id = vendor_token(&["magicbell", "ext-1", secret]);
    let by_email = vendor_token(&["magicbell", "ada@example.com", secret]);
    assert!(by_id.ends_with('='), "MagicBell's HMAC is padded base64: {by_id}");
    let r = kg.get(
        "/notifications?per_page=15",
        &[
            ("X-MAGICBELL-API-KEY", "pk_mb"),
            ("X-MAGICBELL-USER-EXTERNAL-ID", "ext-1"),
            ("X-MAGICBELL-USER-HMAC", &by_id),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("ext-1"));
    let r = kg.get(
        "/notifications",
        &[
            ("X-MAGICBELL-API-KEY", "pk_mb"),
            ("X-MAGICBELL-USER-EMAIL", "ada@example.com"),
            ("X-MAGICBELL-USER-HMAC", &by_email),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("ada@example.com"));
    let before = up.hits();
    kg.get(
        "/notifications",
        &[
            ("X-MAGICBELL-API-KEY", "pk_mb"),
            ("X-MAGICBELL-USER-EXTERNAL-ID", "ext-2"),
            ("X-MAGICBELL-USER-HMAC", &by_id),
        ],
    )
    .assert_denied(401, "invalid_hmac");
    kg.get(
        "/notifications",
        &[("X-MAGICBELL-USER-EXTERNAL-ID", "ext-1"), ("X-MAGICBELL-USER-HMAC", &by_id)],
    )
    .assert_denied(401, "missing_credentials");
    assert_eq!(up.hits(), before);
}

#[test]
fn suprsend_es256_entity_id_and_tenant_scope() {
    let (up, kg) = start(
        "suprsend.yaml",
        &[("SUPRSEND_PUBLIC_KEY", "ss_pk"), ("SUPRSEND_SIGNING_KEY_FILE", &fixture("ec256.pub"))],
    );
    let tok = vendor_token(&["suprsend", "dist-1", "acme", &fixture("ec256.key")]);
    let h = [("Authorization", "ss_pk"), ("x-ss-signature", tok.as_str())];
    let r = kg.get("/v2/subscriber/dist-1/full_preference?tenant_id=acme", &h);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("dist-1"));
    assert_eq!(kg.get("/v1/feed/notifications?tenant_id=acme", &h).status, 200);
    let before = up.hits();
    kg.get("/v2/subscriber/dist-1/full_preference?tenant_id=other", &h)
        .assert_denied(403, "condition_failed");
    kg.get("/v2/subscriber/dist-1/full_preference", &h).assert_denied(403, "condition_failed");
    kg.get("/v2/subscriber/dist-2/full_preference?tenant_id=acme", &h)
        .assert_denied(403, "identity_mismatch");
    let default = vendor_token(&["suprsend", "dist-1", "default", &fixture("ec256.key")]);
    let hd = [("Authorization", "ss_pk"), ("x-ss-signature", default.as_str())];
    assert_eq!(up.hits(), before);
    assert_eq!(kg.get("/v2/subscriber/dist-1/full_preference", &hd).status, 200);
}

#[test]
fn courier_scope_names_the_user() {
    let secret = "courier-issuer-secret-of-32-bytes-at-least";
    let (up, kg) = start("courier.yaml", &[("COURIER_JWT_SECRET", secret)]);
    let tok = vendor_token(&[
        "courier",
        "user_id:u1 user_id:u2 inbox:read:messages inbox:write:events",
        secret,
    ]);
    let bearer = format!("Bearer {tok}");
    let q = br#"{"query":"query { messages { nodes { messageId } } }"}"#;
    let post = |user: &str| {
        kg.post(
            "/client/q",
            &[
                ("Authorization", &bearer),
                ("x-courier-user-id", user),
                ("Content-Type", "application/json"),
            ],
            q,
        )
    };
    let r = post("u2");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-courier-user-id").as_deref(), Some("u2"));
    assert_eq!(r.upstream_header("x-auth-user-id"), None, "the token names no user by claim");
    let before = up.hits();
    post("u3").assert_denied(403, "condition_failed");
    post("u1 user_id:u2").assert_denied(403, "condition_failed");
    post("u").assert_denied(403, "condition_failed");
    let no_inbox = vendor_token(&["courier", "user_id:u1 read:preferences", secret]);
    kg.post(
        "/client/q",
        &[("Authorization", &format!("Bearer {no_inbox}")), ("x-courier-user-id", "u1")],
        q,
    )
    .assert_denied(403, "condition_failed");
    assert_eq!(up.hits(), before);
}

/// A route reading bodies, for the framing tests.
const BULK: &str = r#"
authenticators:
  events_key:
    type: api_key
    from: { header: x-api-key }
    keys: [{ name: k, value: "ek_1" }]
  user:
    type: jwt
    from: { header: authorization, scheme: Bearer }
    algorithms: [RS256]
    keys: [{ pem_file: "${KG_FIXTURES}/rsa.pub" }]
limits: { max_inspected_body_bytes: 1024, request_header_timeout_seconds: 2 }
routes:
  - name: bulk
    path: "/v1/channels/{channel_id}/messages/bulk/{status}"
    methods: [POST]
    auth: [user, events_key]
    bind_json: ["/user_ids/*"]
  - name: plain
    path: "/v1/plain"
    auth: [user]
  - name: broken_condition
    path: "/v1/cond/{user}"
    auth: [user]
    allow_if: 'claims.tenant == "acme"'
"#;

fn bulk() -> (Echo, Keygate) {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder()
        .config(BULK.replace("${KG_FIXTURES}", fixture("").trim_end_matches('/')))
        .upstream(up.addr)
        .start();
    (up, kg)
}

/// A chunked request of `body` in chunks of `size`.
fn chunked(path: &str, headers: &[(&str, &str)], body: &[u8], size: usize) -> Vec<u8> {
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    for c in body.chunks(size) {
        bytes.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        bytes.extend_from_slice(c);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

#[test]
fn bind_json_forwards_byte_for_byte_and_refuses_others() {
    let (up, kg) = bulk();
    let bearer = format!("Bearer {}", user_token("u1"));
    let h = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let path = "/v1/channels/c/messages/bulk/seen";
    // Odd spacing and key order: the backend must see these exact bytes.
    let body = b"{ \"user_ids\" :[\"u1\",  \"u1\"],\n\"filters\":{\"status\":\"unread\"} }";
    let digest = hex::encode(keygate::secret::sha256(body));
    let r = kg.post(path, &h, body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["body_len"].as_u64(), r.json()["body_sha256"].as_str()),
        (Some(body.len() as u64), Some(digest.as_str()))
    );
    let mut c = Conn::open(kg.addr);
    let r = c.raw(&chunked(path, &h, body, 7));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body_sha256"], digest);
    // The same connection serves the next request (the body was consumed exactly).
    let r = c.raw(&chunked(path, &h, body, 1000));
    assert_eq!(r.json()["body_sha256"], digest);

    let before = up.hits();
    kg.post(path, &h, br#"{"user_ids":["u1","u2"]}"#).assert_denied(403, "identity_mismatch");
    Conn::open(kg.addr)
        .raw(&chunked(path, &h, br#"{"user_ids":["u2"]}"#, 3))
        .assert_denied(403, "identity_mismatch");
    kg.post(path, &h, br#"{"user_ids":["u1"],"user_ids":["u2"]}"#)
        .assert_denied(400, "malformed_body");
    kg.post(path, &h, b"user_ids=u1").assert_denied(400, "malformed_body");
    kg.post(
        path,
        &[h[0], ("Content-Type", "application/x-www-form-urlencoded")],
        br#"{"user_ids":["u1"]}"#,
    )
    .assert_denied(400, "malformed_body");
    kg.post(path, &h, b"").assert_denied(400, "malformed_body");
    // An API key has no user id: nothing to bind the body to.
    kg.post(path, &[("x-api-key", "ek_1"), h[1]], br#"{"user_ids":["u1"]}"#)
        .assert_denied(403, "identity_mismatch");
    // Over max_inspected_body_bytes: declared, or only found while reading a chunked body.
    let big = format!(r#"{{"user_ids":["u1"],"pad":"{}"}}"#, "x".repeat(2000));
    kg.post(path, &h, big.as_bytes()).assert_denied(413, "body_too_large");
    let mut c = Conn::open(kg.addr);
    c.raw(&chunked(path, &h, big.as_bytes(), 100)).assert_denied(413, "body_too_large");
    assert!(c.is_closed(), "an unread body ends the connection");
    assert_eq!(up.hits(), before);

    // `Expect: 100-continue`: keygate answers 100 itself, reads the body, and the backend gets it
    // without being asked again.
    let mut c = Conn::open(kg.addr);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {bearer}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    use std::io::{BufRead, Write};
    c.rd.get_mut().write_all(head.as_bytes()).unwrap();
    let mut line = String::new();
    c.rd.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    c.rd.read_line(&mut line).unwrap();
    c.rd.get_mut().write_all(body).unwrap();
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body_sha256"], digest);
    assert!(!r.upstream_headers().iter().any(|(k, _)| k.eq_ignore_ascii_case("expect")));

    // A body trickled past the deadline (request_header_timeout_seconds) is refused.
    let mut c = Conn::open(kg.addr);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {bearer}\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"user_ids\""
    );
    let started = std::time::Instant::now();
    c.raw(head.as_bytes()).assert_denied(400, "malformed_body");
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(15),
        "{took:?}"
    );
    assert!(c.is_closed(), "a body given up on ends the connection");

    // A route that reads no body streams a large one untouched.
    let large = vec![b'z'; 200_000];
    let r = kg.post("/v1/plain", &[h[0]], &large);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 200_000);
}

#[test]
fn an_evaluation_error_refuses() {
    let (up, kg) = bulk();
    let no_tenant = format!("Bearer {}", user_token("u1"));
    let before = up.hits();
    kg.get("/v1/cond/u1", &[("Authorization", &no_tenant)]).assert_denied(403, "condition_failed");
    assert_eq!(up.hits(), before);
    let t = now();
    let tok = sign(
        "rsa.key",
        "RS256",
        None,
        serde_json::json!({"sub": "u1", "tenant": "acme", "exp": t + 60}),
    );
    assert_eq!(kg.get("/v1/cond/u1", &[("Authorization", &format!("Bearer {tok}"))]).status, 200);
    let wrong = sign(
        "rsa.key",
        "RS256",
        None,
        serde_json::json!({"sub": "u1", "tenant": 7, "exp": t + 60}),
    );
    kg.get("/v1/cond/u1", &[("Authorization", &format!("Bearer {wrong}"))])
        .assert_denied(403, "condition_failed");
}

#[test]
fn explain_prints_the_condition_its_value_and_reads_a_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kg.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nupstream: {{ url: \"http://127.0.0.1:9\" }}\n{}",
            example("knock_grants.yaml")
        ),
    )
    .unwrap();
    let tok = vendor_token(&["knock", "user-1", &fixture("rsa.key"), "user-1"]);
    let explain = |target: &str, extra: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(["explain", "--config"])
            .arg(&path)
            .args([
                "-H",
                "Authorization: Bearer pk_test_1",
                "-H",
                &format!("X-Knock-User-Token: {tok}"),
            ])
            .args(extra)
            .arg(target)
            .env("KNOCK_PUBLIC_API_KEY", "pk_test_1")
            .env("KNOCK_SIGNING_KEY_FILE", fixture("rsa.pub"))
            .env("KEYGATE_ASSERTION_KEY_FILE", fixture("ec256.key"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!text.contains(&tok), "explain echoed the token: {text}");
        (out.status.success(), text)
    };
    let (ok, text) = explain("/v1/users/user-1/feeds/f", &[]);
    assert!(ok, "{text}");
    assert!(text.contains("allow_if: has(claims.grants)"), "{text}");
    assert!(text.contains("  alternative 1: true"), "{text}");
    assert!(text.contains("x-auth-assertion: <signed assertion>"), "{text}");
    let (ok, text) = explain("/v1/users/user-2/feeds/f", &[]);
    assert!(!ok);
    assert!(
        text.contains("  alternative 1: false") && text.contains("403 condition_failed"),
        "{text}"
    );
    let bulk = "/v1/channels/c/messages/bulk/read";
    let (ok, text) = explain(bulk, &["-X", "POST", "-d", r#"{"user_ids":["user-1"]}"#]);
    assert!(ok, "{text}");
    let (ok, text) = explain(bulk, &["-X", "POST", "-d", r#"{"user_ids":["user-2"]}"#]);
    assert!(!ok && text.contains("403 identity_mismatch"), "{text}");
    let (ok, text) = explain(bulk, &["-X", "POST"]);
    assert!(!ok && text.contains("give it with -d"), "without -d: {text}");
}
