//! Sessions: an open websocket ends when its credential does (`docs/config.md`, "Sessions and
//! revocation"): at expiry (within 1 s), on revocation, when its key leaves the config or the JWK
//! set, at `max_lifetime_seconds`. Driven by the real socket.io-client (its `auth` callback
//! minting 6-second tokens) and server, a real `ws` backend, Knock's Phoenix socket URL, and the
//! raw websocket client; the backend must see each close.

use crate::common::jwks_server::{jwk, JwksServer};
use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SIO: &str = "/api/v1/wss/socket.io";

/// The Socket.IO server on `SIO` and a plain `ws` server on every other path.
fn backend() -> Program {
    Program::node("session_backend.js", &[SIO])
}

/// A config body: `extra` top-level blocks, then the authenticators and routes every test uses.
fn body(extra: &str) -> String {
    format!(
        r#"{extra}
identity:
  claims: {{ n: x-auth-token-n }}
authenticators:
  doka_customer:
    type: jwt
    from:
      - {{ header: authorization, scheme: Bearer }}
      - {{ query: user_token }}
      - {{ socketio_auth: token, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{{ kid: "{DOKA_KID}", pem_file: "{pem}" }}]
    require: [sub, exp]
    leeway_seconds: 0
  knock_public:
    type: public_key
    from: [{{ query: api_key }}]
    keys: [{{ name: web, value: pk_test_sessions }}]
  events_key:
    type: api_key
    from: [{{ header: x-api-key }}]
    keys: [{{ name: ci, sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae }}]
routes:
  - {{ name: socketio, path: "{SIO}/{{*rest}}", socketio: true, auth: [doka_customer] }}
  - {{ name: knock_socket, path: /ws/v1/websocket, auth: [[knock_public, doka_customer]] }}
  - {{ name: plain_ws, path: /ws/plain, auth: [doka_customer] }}
  - {{ name: keyed_ws, path: /ws/keyed, auth: [events_key] }}
  - {{ name: api, path: "/v1/{{*rest}}", auth: [doka_customer] }}
"#,
        pem = fixture("rsa.pub")
    )
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A DokaAI token for `sub` expiring `ttl` seconds from now: (token, exp).
fn token(sub: &str, ttl: u64) -> (String, u64) {
    let t = now();
    let exp = t + ttl;
    (sign("rsa.key", "RS256", Some(DOKA_KID), json!({"sub": sub, "iat": t, "exp": exp})), exp)
}

/// A websocket through keygate (panics unless 101), reads time out after 15 s.
fn open(kg: &Keygate, target: &str, headers: &[(&str, &str)]) -> WsClient {
    let ws = ws_connect(kg.addr, target, headers).unwrap_or_else(|r| panic!("{}", r.text()));
    ws.rd.get_ref().set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    ws
}

/// Reads until a close frame: (status code, reason text, unix time it arrived); `None` if the
/// connection ended without one.
fn read_close(ws: &mut WsClient) -> Option<(u16, String, f64)> {
    loop {
        let (op, p) = ws.read_frame()?;
        if op == 8 {
            let code = u16::from_be_bytes([p[0], p[1]]);
            return Some((code, String::from_utf8_lossy(&p[2..]).to_string(), unix_now()));
        }
    }
}

/// Whether the socket still echoes.
fn echoes(ws: &mut WsClient, text: &str) -> bool {
    ws.send_text(text);
    ws.read_text().as_deref() == Some(text)
}

/// A Socket.IO websocket on `SIO` whose CONNECT carries `tok`, accepted.
fn sio_connect(kg: &Keygate, tok: &str) -> WsClient {
    let mut ws = open(kg, &format!("{SIO}/?EIO=4&transport=websocket"), &[]);
    assert!(ws.read_text().unwrap().starts_with("0{"));
    ws.send_text(&format!(r#"40{{"token":"Bearer {tok}"}}"#));
    let ack = ws.read_text().unwrap();
    assert!(ack.starts_with("40{\"sid\""), "{ack}");
    ws
}

/// Backend events matching `event` seen within `wait` (after the first, until a quiet gap).
fn backend_events(node: &Program, wait: Duration) -> Vec<Value> {
    node.events(wait)
}

/// Runs the session client: (its events).
fn sio_client(kg: &Keygate, mode: &str, ttl: u64, connects: u32) -> Vec<Value> {
    programs::run(
        "socketio_session_client.js",
        &[
            &format!("http://{}", kg.addr),
            SIO,
            &fixture("rsa.key"),
            DOKA_KID,
            "cust-1",
            &ttl.to_string(),
            mode,
            &connects.to_string(),
        ],
    )
}

#[test]
fn socketio_client_with_an_auth_callback_stays_subscribed_across_three_expiries() {
    let node = backend();
    let kg = Keygate::builder().config(body("")).upstream(node.addr()).start();
    let events = sio_client(&kg, "callback", 6, 4);
    let of = |name: &str| events.iter().filter(|e| e["event"] == name).collect::<Vec<_>>();
    assert_eq!(of("connect").len(), 4, "{events:#?}");
    assert_eq!(of("pong").len(), 4, "subscribed after every reconnect: {events:#?}");
    // Three closes by keygate, then the client's own at the end.
    let closes: Vec<_> =
        of("disconnect").into_iter().filter(|d| d["reason"] != "io client disconnect").collect();
    assert_eq!(closes.len(), 3, "{events:#?}");
    for d in &closes {
        assert_eq!(d["reason"], "transport close", "a transport close, so it reconnects: {d}");
        let late = d["at"].as_f64().unwrap() / 1000.0 - d["exp"].as_f64().unwrap();
        assert!((-0.05..=1.0).contains(&late), "closed {late:.3} s after exp: {d}");
    }
    // The backend saw each old socket disconnect and a new one connect with the new identity.
    let seen = backend_events(&node, Duration::from_millis(1500));
    let connections: Vec<&Value> = seen.iter().filter(|e| e["event"] == "connection").collect();
    assert_eq!(connections.len(), 4, "{seen:#?}");
    let ns: Vec<&str> =
        connections.iter().map(|c| c["identity"]["claims"]["n"].as_str().unwrap()).collect();
    assert_eq!(ns, ["1", "2", "3", "4"], "each connect carries its fresh token's identity");
    assert!(connections.iter().all(|c| c["identity"]["user_id"] == "cust-1"));
    let gone = seen.iter().filter(|e| e["event"] == "disconnect").count();
    assert!(gone >= 3, "the backend saw every expired socket go: {seen:#?}");
    kg.metrics_with(&[
        r#"keygate_sessions_closed_total{reason="token_expired",route="socketio"} 3"#,
    ]);
}

#[test]
fn a_static_auth_object_gets_token_expired_on_reconnect() {
    let node = backend();
    let kg = Keygate::builder().config(body("")).upstream(node.addr()).start();
    let events = sio_client(&kg, "static", 3, 2);
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["token", "connect", "pong", "disconnect", "connect_error"], "{events:#?}");
    let d = &events[3];
    let late = d["at"].as_f64().unwrap() / 1000.0 - d["exp"].as_f64().unwrap();
    assert!((-0.05..=1.0).contains(&late), "closed {late:.3} s after exp: {d}");
    assert_eq!(events[4]["message"], "unauthorized");
    assert_eq!(events[4]["data"]["reason"], "token_expired");
}

#[test]
fn plain_and_phoenix_websockets_close_within_a_second_of_exp_and_the_backend_sees_it() {
    let node = backend();
    let kg = Keygate::builder().config(body("")).upstream(node.addr()).start();
    let (t1, exp1) = token("user-1", 3);
    let (t2, exp2) = token("user-2", 4);
    let bearer = format!("Bearer {t1}");
    let mut plain = open(&kg, "/ws/plain", &[("authorization", &bearer)]);
    let phoenix_target =
        format!("/ws/v1/websocket?user_token={t2}&api_key=pk_test_sessions&&vsn=2.0.0");
    let mut phoenix = open(&kg, &phoenix_target, &[]);
    assert!(echoes(&mut plain, "hello") && echoes(&mut phoenix, "hello"));
    kg.metrics_with(&[
        r#"keygate_sessions_open{route="plain_ws"} 1"#,
        r#"keygate_sessions_open{route="knock_socket"} 1"#,
    ]);
    for (ws, exp) in [(&mut plain, exp1), (&mut phoenix, exp2)] {
        let (code, reason, at) = read_close(ws).expect("a close frame");
        assert_eq!((code, reason.as_str()), (1008, "token_expired"));
        let late = at - exp as f64;
        assert!((-0.05..=1.0).contains(&late), "closed {late:.3} s after exp");
        assert!(ws.read_frame().is_none(), "then the connection closes");
    }
    let seen = backend_events(&node, Duration::from_millis(1000));
    let closes: Vec<(&str, u64, &str)> = seen
        .iter()
        .filter(|e| e["event"] == "ws_close")
        .map(|e| {
            (
                e["user"].as_str().unwrap(),
                e["code"].as_u64().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(closes.contains(&("user-1", 1001, "token_expired")), "{seen:#?}");
    assert!(closes.contains(&("user-2", 1001, "token_expired")), "{seen:#?}");
    let m = kg.metrics_with(&[
        r#"keygate_sessions_closed_total{reason="token_expired",route="plain_ws"} 1"#,
        r#"keygate_sessions_closed_total{reason="token_expired",route="knock_socket"} 1"#,
        r#"keygate_sessions_open{route="plain_ws"} 0"#,
        r#"keygate_sessions_open{route="knock_socket"} 0"#,
    ]);
    assert!(!m.contains(&t1[..20]));
    // One access-log line per close, with its reason; no credential in it.
    let logs = kg.logs();
    let closed: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["outcome"] == "closed")
        .collect();
    assert_eq!(closed.len(), 2, "{logs}");
    assert!(closed.iter().all(|l| l["reason"] == "token_expired" && l["status"] == 101));
    assert!(closed.iter().any(|l| l["route"] == "knock_socket" && l["user_id"] == "user-2"));
    assert!(!logs.contains(&t1[t1.len() - 20..]) && !logs.contains(&t2[t2.len() - 20..]));
}

#[test]
fn revoking_a_user_closes_their_sockets_and_refuses_their_cached_token() {
    let node = backend();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.yaml");
    std::fs::write(&file, "# nothing revoked yet\n[]\n").unwrap();
    let extra = format!(
        "sessions: {{ recheck_seconds: 2 }}\nrevocations: {{ file: \"{}\" }}",
        file.display()
    );
    let kg = Keygate::builder().config(body(&extra)).upstream(node.addr()).start();
    let (t1, _) = token("user-1", 600);
    let (t2, _) = token("user-2", 600);
    let (b1, b2) = (format!("Bearer {t1}"), format!("Bearer {t2}"));
    let mut plain1 = open(&kg, "/ws/plain", &[("authorization", &b1)]);
    let mut plain2 = open(&kg, "/ws/plain", &[("authorization", &b2)]);
    let mut sio1 = sio_connect(&kg, &t1);
    assert_eq!(kg.get("/v1/feed", &[("authorization", &b1)]).status, 200); // now cached
    assert_eq!(kg.metric(r#"keygate_revocations{source="file"}"#), Some(0.0));

    std::fs::write(&file, "- { sub: user-1 }\n").unwrap();
    let written = Instant::now();
    for ws in [&mut plain1, &mut sio1] {
        let (code, reason, _) = read_close(ws).expect("a close frame");
        assert_eq!((code, reason.as_str()), (1008, "credential_revoked"));
    }
    let took = written.elapsed();
    assert!(took < Duration::from_millis(2000 + 1500), "closed {took:?} after the write");
    assert!(echoes(&mut plain2, "still here"), "user-2 untouched");
    kg.get("/v1/feed", &[("authorization", &b1)]).assert_denied(401, "credential_revoked");
    assert_eq!(kg.get("/v1/feed", &[("authorization", &b2)]).status, 200);
    kg.metrics_with(&[
        r#"keygate_revocations{source="file"} 1"#,
        r#"keygate_sessions_closed_total{reason="credential_revoked",route="plain_ws"} 1"#,
        r#"keygate_sessions_closed_total{reason="credential_revoked",route="socketio"} 1"#,
        r#"keygate_sessions_open{route="plain_ws"} 1"#,
    ]);
    let seen = backend_events(&node, Duration::from_millis(1000));
    assert!(
        seen.iter().any(|e| e["event"] == "disconnect" && e["identity"]["user_id"] == "user-1"),
        "{seen:#?}"
    );

    // `keygate explain` names the entry.
    let out = std::process::Command::new(bin())
        .args(["explain", "--config"])
        .arg(kg.config_path())
        .args(["-H", &format!("Authorization: {b1}"), "/v1/feed"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(r#"revoked by revocations.file entry 1: {"sub":"user-1"}"#), "{text}");
    assert!(!text.contains(&t1[t1.len() - 20..]));

    // An invalid file keeps the list in force and counts as a failed reload.
    let errors = kg.metric(r#"keygate_config_reloads_total{result="error"}"#).unwrap();
    std::fs::write(&file, "- { sub: user-1 }\n- { user: nobody }\n").unwrap();
    eventually("the failed reload", Duration::from_secs(5), || {
        let now = kg.metric(r#"keygate_config_reloads_total{result="error"}"#).unwrap();
        (now > errors).then_some(())
    });
    assert!(kg.logs().contains("revocations.yaml:2:"), "the error names file and line");
    kg.get("/v1/feed", &[("authorization", &b1)]).assert_denied(401, "credential_revoked");
}

#[test]
fn removing_a_key_from_the_config_or_the_jwk_set_closes_the_sockets_it_authorized() {
    let node = backend();
    let srv = JwksServer::start(vec![jwk("rsa.jwk.json", Some("j1"), json!({"alg": "RS256"}))]);
    let config = |static_kids: &[&str]| {
        let keys: Vec<String> = static_kids
            .iter()
            .map(|k| {
                let pem = fixture(if *k == "s2" { "rsa_other.pub" } else { "rsa.pub" });
                format!("{{ kid: {k}, pem_file: \"{pem}\" }}")
            })
            .collect();
        format!(
            r#"sessions: {{ recheck_seconds: 30 }}
authenticators:
  idp:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    jwks_url: "{url}"
    algorithms: [RS256]
    jwks: {{ min_refresh_interval_seconds: 1, refresh_seconds: 1 }}
  fixed:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{keys}]
routes:
  - {{ name: plain_ws, path: /ws/plain, auth: [idp, fixed] }}
"#,
            url = srv.url(),
            keys = keys.join(", ")
        )
    };
    let kg = Keygate::builder().config(config(&["s1", "s2"])).upstream(node.addr()).start();
    kg.wait_readyz(200, 10);
    let t = now();
    let claims = |sub: &str| json!({"sub": sub, "iat": t, "exp": t + 600});
    let by = |key: &str, kid: &str| {
        let tok = sign(key, "RS256", Some(kid), claims(kid));
        open(&kg, "/ws/plain", &[("authorization", &format!("Bearer {tok}"))])
    };
    let (mut s1, mut s2, mut j1) =
        (by("rsa.key", "s1"), by("rsa_other.key", "s2"), by("rsa.key", "j1"));
    assert!(echoes(&mut s1, "a") && echoes(&mut s2, "a") && echoes(&mut j1, "a"));

    // s1 leaves the config: its socket closes at the reload (not at the 30 s recheck).
    std::fs::write(kg.config_path(), kg.config_text(&config(&["s2"]))).unwrap();
    let (code, reason, _) = read_close(&mut s1).expect("a close frame");
    assert_eq!((code, reason.as_str()), (1008, "unknown_key"));
    // j1 leaves the JWK set: its socket closes after the next fetch.
    srv.set(|b| b.keys = vec![jwk("rsa_other.jwk.json", Some("j2"), json!({"alg": "RS256"}))]);
    let started = Instant::now();
    let (code, reason, _) = read_close(&mut j1).expect("a close frame");
    assert_eq!((code, reason.as_str()), (1008, "unknown_key"));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(echoes(&mut s2, "b"), "the socket of the key still in force stays open");
    kg.metrics_with(&[r#"keygate_sessions_closed_total{reason="unknown_key",route="plain_ws"} 2"#]);
}

#[test]
fn max_lifetime_caps_every_socket_and_end_at_expiry_false_keeps_expired_ones() {
    let node = backend();
    let extra = "sessions: { end_at_expiry: false, recheck_seconds: 1, max_lifetime_seconds: 5 }";
    let kg = Keygate::builder().config(body(extra)).upstream(node.addr()).start();
    let opened = Instant::now();
    let mut keyed = open(&kg, "/ws/keyed", &[("x-api-key", "foo")]);
    let (tok, exp) = token("user-1", 2);
    let mut expiring = open(&kg, "/ws/plain", &[("authorization", &format!("Bearer {tok}"))]);
    // Past exp and two recheck rounds: still open, without `end_at_expiry`.
    std::thread::sleep(Duration::from_secs_f64((exp as f64 + 2.5 - unix_now()).max(0.0)));
    assert!(echoes(&mut expiring, "after exp"));
    kg.get("/v1/feed", &[("authorization", &format!("Bearer {tok}"))])
        .assert_denied(401, "token_expired");
    for ws in [&mut keyed, &mut expiring] {
        let (code, reason, _) = read_close(ws).expect("a close frame");
        assert_eq!((code, reason.as_str()), (1008, "max_lifetime"));
    }
    let lived = opened.elapsed();
    assert!(lived >= Duration::from_millis(4900) && lived < Duration::from_secs(7), "{lived:?}");
    kg.metrics_with(&[
        r#"keygate_sessions_closed_total{reason="max_lifetime",route="keyed_ws"} 1"#,
        r#"keygate_sessions_closed_total{reason="max_lifetime",route="plain_ws"} 1"#,
    ]);
}

#[test]
fn a_namespace_connected_again_replaces_its_credential() {
    let node = backend();
    let kg = Keygate::builder().config(body("")).upstream(node.addr()).start();
    let (short, exp) = token("cust-1", 2);
    let (long, _) = token("cust-1", 600);
    let mut ws = sio_connect(&kg, &short);
    ws.send_text(&format!(r#"40/tenant,{{"token":"Bearer {long}"}}"#));
    assert!(ws.read_text().unwrap().starts_with("40/tenant,{\"sid\""));
    // socket.io-client's socket.disconnect() then socket.connect(), with a fresh token.
    ws.send_text("41");
    ws.send_text(&format!(r#"40{{"token":"Bearer {long}"}}"#));
    assert!(ws.read_text().unwrap().starts_with("40{\"sid\""));
    std::thread::sleep(Duration::from_secs_f64((exp as f64 + 1.5 - unix_now()).max(0.0)));
    ws.send_text(r#"42["ping",{"n":1}]"#);
    assert_eq!(ws.read_text().as_deref(), Some(r#"42["pong",{"n":1}]"#), "still open past exp");
    assert_eq!(kg.metric(r#"keygate_sessions_open{route="socketio"}"#), Some(1.0));
}
