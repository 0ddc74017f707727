//! WebSockets: upgrades authenticated like any request (Knock's Phoenix socket with query
//! credentials), and Socket.IO CONNECT packets authenticated inside the stream, driven by the
//! real `socket.io` server and `socket.io-client` (npm), and by a raw client for split and
//! fragmented frames.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SIO_PATH: &str = "/api/v1/wss/socket.io";

/// The real socket.io server on `SIO_PATH`.
fn sio_server() -> Program {
    Program::node("socketio_server.js", &[SIO_PATH])
}

/// Runs socket.io-client through keygate; returns its events.
fn client(kg: &Keygate, token: Option<&str>, nsp: &str, rounds: u32) -> Vec<Value> {
    programs::run(
        "socketio_client.js",
        &[&format!("http://{}", kg.addr), SIO_PATH, token.unwrap_or("-"), nsp, &rounds.to_string()],
    )
}

fn sio_keygate(upstream: std::net::SocketAddr) -> Keygate {
    let body = format!(
        r#"identity:
  claims: {{ workspace_id: x-auth-workspace-id }}
  socketio_key: identity
limits: {{ socketio_connect_timeout_seconds: 1 }}
authenticators:
  doka_customer:
    type: jwt
    from:
      - {{ header: authorization, scheme: Bearer }}
      - {{ socketio_auth: token, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{{ kid: "{DOKA_KID}", pem_file: "{}" }}]
    require: [sub, exp]
    claims: {{ type: customer, workspace_id: [ONAVZK8J] }}
routes:
  - {{ name: socketio, path: "{SIO_PATH}/{{*rest}}", socketio: true, auth: [doka_customer] }}
"#,
        fixture("rsa.pub")
    );
    Keygate::builder().config(&body).upstream(upstream).start()
}

fn token(claims: Value) -> String {
    sign("rsa.key", "RS256", Some(DOKA_KID), claims)
}

#[test]
fn socketio_clients_are_authenticated_by_their_connect_packet() {
    let node = sio_server();
    let up = node.addr();
    let kg = sio_keygate(up);

    // A valid token: connected, the server sees the verified identity (not the client's), and
    // events flow both ways for a while.
    let events = client(&kg, Some(&token(customer_claims("cust-1", "ONAVZK8J"))), "/", 10);
    assert_eq!(events[0]["event"], "connect", "{events:?}");
    assert_eq!(events.iter().filter(|e| e["event"] == "pong").count(), 10, "{events:?}");
    let seen = node.events(Duration::from_millis(500));
    let conn = seen.iter().find(|e| e["event"] == "connection").expect("server saw the connection");
    assert_eq!(conn["nsp"], "/");
    assert_eq!(conn["auth"]["identity"]["user_id"], "cust-1");
    assert_eq!(conn["auth"]["identity"]["method"], "jwt");
    assert_eq!(conn["auth"]["identity"]["credential"], format!("doka_customer/{DOKA_KID}"));
    assert_eq!(conn["auth"]["identity"]["claims"]["workspace_id"], "ONAVZK8J");
    assert_eq!(conn["auth"]["extra"], "kept");
    assert_eq!(
        conn["user"],
        Value::Null,
        "no identity header on an upgrade authenticated in-stream"
    );
    assert_eq!(seen.iter().filter(|e| e["event"] == "ping").count(), 10);

    // A namespace.
    let events = client(&kg, Some(&token(customer_claims("cust-2", "ONAVZK8J"))), "/tenant", 2);
    assert_eq!(events[0]["event"], "connect", "{events:?}");
    let seen = node.events(Duration::from_millis(300));
    let conn = seen.iter().find(|e| e["event"] == "connection").unwrap();
    assert_eq!(
        (conn["nsp"].as_str(), conn["auth"]["identity"]["user_id"].as_str()),
        (Some("/tenant"), Some("cust-2"))
    );

    // Refusals: connect_error "unauthorized" with the reason; the server never sees them.
    let t = now();
    let mut wrong_type = customer_claims("x", "ONAVZK8J");
    wrong_type["type"] = json!("admin");
    let cases = [
        (None, "missing_credentials"),
        (
            Some(token(
                json!({"sub": "x", "type": "customer", "workspace_id": "ONAVZK8J", "iat": t - 900, "exp": t - 600}),
            )),
            "token_expired",
        ),
        (
            Some(sign("rsa_other.key", "RS256", Some(DOKA_KID), customer_claims("x", "ONAVZK8J"))),
            "invalid_signature",
        ),
        (Some(token(wrong_type)), "claim_mismatch"),
    ];
    for (tok, reason) in &cases {
        for nsp in ["/", "/tenant"] {
            let events = client(&kg, tok.as_deref(), nsp, 1);
            assert_eq!(events[0]["event"], "connect_error", "{reason} {nsp}: {events:?}");
            assert_eq!(events[0]["message"], "unauthorized");
            assert_eq!(events[0]["data"]["reason"], *reason);
        }
    }
    let seen = node.events(Duration::from_millis(500));
    assert!(
        seen.iter().all(|e| e["event"] != "connection"),
        "a refused client reached the server: {seen:?}"
    );
    kg.metrics_with(&[
        r#"keygate_requests_total{outcome="denied",reason="token_expired",route="socketio"} 2"#,
        r#"keygate_requests_total{outcome="allowed",reason="none",route="socketio"} 2"#,
    ]);
}

#[test]
fn connect_split_across_writes_and_fragments_and_protocol_rules() {
    let node = sio_server();
    let up = node.addr();
    let kg = sio_keygate(up);
    let target = format!("{SIO_PATH}/?EIO=4&transport=websocket");
    let tok = token(customer_claims("cust-raw", "ONAVZK8J"));

    // The CONNECT in three fragments with a ping between them, written a few bytes at a time.
    let mut ws = ws_connect(kg.addr, &target, &[]).unwrap_or_else(|r| panic!("{}", r.text()));
    let open = ws.read_text().unwrap();
    assert!(open.starts_with("0{"), "Engine.IO open first: {open}");
    let payload = format!(r#"40{{"token":"Bearer {tok}","identity":"spoof"}}"#);
    let (a, rest) = payload.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut bytes = WsClient::frame(1, false, a.as_bytes());
    bytes.extend(WsClient::frame(9, true, b"keepalive"));
    bytes.extend(WsClient::frame(0, false, b.as_bytes()));
    bytes.extend(WsClient::frame(0, true, c.as_bytes()));
    for chunk in bytes.chunks(7) {
        ws.write(chunk);
        std::thread::sleep(Duration::from_millis(2));
    }
    let ack = ws
        .read_text()
        .unwrap_or_else(|| panic!("closed; node {:?}", node.events(Duration::from_millis(200))));
    assert!(ack.starts_with("40{\"sid\""), "{ack}");
    // Like socket.io-client, emit only once connected (the server refuses events for a
    // namespace it has not acknowledged yet). Later frames pass through untouched.
    ws.send_text(r#"42["ping",{"raw":true}]"#);
    assert_eq!(ws.read_text().as_deref(), Some(r#"42["pong",{"raw":true}]"#));
    let seen = node.events(Duration::from_millis(300));
    let conn = seen.iter().find(|e| e["event"] == "connection").unwrap();
    assert_eq!(
        conn["auth"]["identity"]["user_id"], "cust-raw",
        "client-supplied identity replaced"
    );

    // No CONNECT: closed after socketio_connect_timeout_seconds (1 s).
    let mut ws = ws_connect(kg.addr, &target, &[]).unwrap();
    ws.read_text().unwrap();
    let started = Instant::now();
    while ws.read_frame().is_some() {}
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );

    // Data before the CONNECT closes the connection (1008); the server never sees it.
    let mut ws = ws_connect(kg.addr, &target, &[]).unwrap();
    ws.read_text().unwrap();
    ws.send_text(r#"42["ping",{}]"#);
    let mut closed_with = None;
    while let Some((op, p)) = ws.read_frame() {
        if op == 8 {
            closed_with = Some(u16::from_be_bytes([p[0], p[1]]));
        }
    }
    assert_eq!(closed_with, Some(1008));

    // A refused raw CONNECT gets 44 and close 1008.
    let mut ws = ws_connect(kg.addr, &target, &[]).unwrap();
    ws.read_text().unwrap();
    ws.send_text(r#"40/tenant,{"token":"Bearer not.a.jwt"}"#);
    assert_eq!(
        ws.read_text().as_deref(),
        Some(r#"44/tenant,{"message":"unauthorized","data":{"reason":"malformed_credentials"}}"#)
    );
    let seen = node.events(Duration::from_millis(300));
    assert!(seen.iter().all(|e| e["event"] != "ping" && e["event"] != "connection"), "{seen:?}");

    // A later CONNECT to another namespace on the same connection is checked too.
    let mut ws = ws_connect(kg.addr, &target, &[]).unwrap();
    ws.read_text().unwrap();
    ws.send_text(&format!(r#"40{{"token":"Bearer {tok}"}}"#));
    assert!(ws.read_text().unwrap().starts_with("40{\"sid\""));
    let expired = {
        let t = now();
        token(
            json!({"sub": "x", "type": "customer", "workspace_id": "ONAVZK8J", "iat": t - 900, "exp": t - 600}),
        )
    };
    ws.send_text(&format!(r#"40/tenant,{{"token":"Bearer {expired}"}}"#));
    assert_eq!(
        ws.read_text().as_deref(),
        Some(r#"44/tenant,{"message":"unauthorized","data":{"reason":"token_expired"}}"#)
    );

    // A first frame over the limit closes the connection without reaching the server.
    let mut ws = ws_connect(kg.addr, &target, &[]).unwrap();
    ws.read_text().unwrap();
    ws.send_text(&format!(r#"40{{"token":"Bearer {}"}}"#, "a".repeat(40_000)));
    let mut closed_with = None;
    while let Some((op, p)) = ws.read_frame() {
        if op == 8 {
            closed_with = Some(u16::from_be_bytes([p[0], p[1]]));
        }
    }
    assert_eq!(closed_with, Some(1008));

    // Engine.IO long-polling on this route: 400 websocket_required.
    kg.get(&format!("{SIO_PATH}/?EIO=4&transport=polling"), &[])
        .assert_denied(400, "websocket_required");
    // A valid Bearer header on the upgrade itself is an ordinary authenticated upgrade.
    let ws = ws_connect(kg.addr, &target, &[("Authorization", &format!("Bearer {tok}"))]);
    assert!(ws.is_ok());
}

#[test]
fn phoenix_websocket_with_query_credentials() {
    let (up, kg) = full("production");
    let tok = user_token("user-1");
    let _ = kg;
    let body = format!(
        "{}\n  - {{ name: knock_socket, path: /ws/v1/websocket, auth: [[knock_public, knock_user]] }}\n",
        full_config("production").trim_end()
    );
    drop(up);
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder()
        .config(&body)
        .upstream(up.addr)
        .env("KG_TEST_HMAC_SECRET", HMAC_SECRET)
        .start();

    let target = format!("/ws/v1/websocket?user_token={tok}&api_key=pk_test_1&&vsn=2.0.0");
    let mut ws = ws_connect(kg.addr, &target, &[("X-Auth-User-Id", "spoof")])
        .unwrap_or_else(|r| panic!("{}", r.text()));
    let described: Value = serde_json::from_str(&ws.read_text().unwrap()).unwrap();
    let headers: Vec<(String, String)> =
        serde_json::from_value(described["headers"].clone()).unwrap();
    let user: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-auth-user-id"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(user, vec!["user-1"]);
    assert_eq!(described["target"], target, "query forwarded byte for byte");
    // Frames flow both ways through the upgraded connection.
    ws.send_text(r#"["1","1","phoenix","phx_join",{}]"#);
    assert_eq!(ws.read_text().as_deref(), Some(r#"["1","1","phoenix","phx_join",{}]"#));

    let before = up.hits();
    let bad = format!(
        "/ws/v1/websocket?user_token={}&api_key=pk_test_1&vsn=2.0.0",
        user_token("user-1").replace('.', "x")
    );
    let r = ws_connect(kg.addr, &bad, &[]).err().expect("refused");
    r.assert_denied(401, "malformed_credentials");
    let r = ws_connect(kg.addr, "/ws/v1/websocket?api_key=pk_test_1&vsn=2.0.0", &[])
        .err()
        .expect("refused");
    r.assert_denied(401, "missing_credentials");
    assert_eq!(up.hits(), before, "a refused upgrade reached the backend");
}
