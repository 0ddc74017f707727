//! Regression tests for the findings of the outside attack review, each against the real
//! backend it was found with: a naive Python app that ignores `Upgrade` and `Expect`, Express 4
//! with `app.all` handlers and an anonymous catch-all, the real socket.io 4.8 server, and the
//! echo upstream. A backend's own log of what it received is the oracle.

use crate::common::attack::*;
use crate::common::*;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_request(version: &str, path: &str, upgrade: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/{version}\r\nHost: app.test\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

/// Requests a backend received on a protected path without keygate's identity.
fn unauthenticated_hits(records: &[Value], allow: impl Fn(&Value) -> bool) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| is_protected(r))
        .filter(|r| header_of(r, "x-auth-method").is_empty() && !allow(r))
        .collect()
}

#[test]
fn finding_1_upgrade_never_skips_authentication() {
    let py = Program::python("naive_app.py");
    let kg = attack_keygate(py.addr());
    let sio = format!("{SIO}/?EIO=4&transport=websocket");
    let bad = "Authorization: Bearer not.a.token\r\n";
    struct Attempt {
        what: &'static str,
        raw: String,
        status: u16,
    }
    let rest = "/api/v1/notifications";
    let ws = |version, target: &str| upgrade_request(version, target, "websocket", "");
    let polling =
        |eio: &str| format!("GET {SIO}/?{eio}=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n");
    let token = customer_token("alice");
    let cases = [
        Attempt { what: "HTTP/1.0 on the Socket.IO route", raw: ws("1.0", &sio), status: 400 },
        Attempt {
            what: "h2c, websocket",
            raw: upgrade_request("1.1", &sio, "h2c, websocket", ""),
            status: 400,
        },
        Attempt {
            what: "invalid token + Upgrade",
            raw: upgrade_request("1.1", &sio, "websocket", bad),
            status: 401,
        },
        Attempt { what: "Upgrade on a REST route", raw: ws("1.1", rest), status: 401 },
        Attempt { what: "HTTP/1.0 on a REST route", raw: ws("1.0", rest), status: 401 },
        // The exact form, to a backend that ignores Upgrade: forwarded for in-stream auth, but
        // its 200 never reaches the client.
        Attempt { what: "exact upgrade, backend answers 200", raw: ws("1.1", &sio), status: 401 },
        Attempt { what: "long-polling", raw: polling("EIO"), status: 400 },
        Attempt { what: "encoded EIO", raw: polling("%45IO"), status: 400 },
        Attempt {
            what: "long-polling with a valid token",
            raw: format!(
                "POST {SIO}/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {token}\r\nContent-Length: 2\r\n\r\n40"
            ),
            status: 400,
        },
    ];
    for Attempt { what, raw, status } in &cases {
        let r = Conn::open(kg.addr).raw(raw.as_bytes());
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert!(
            !r.text().contains("secret-data"),
            "{what}: the backend's bytes reached the client"
        );
        assert!(r.json()["reason"].is_string(), "{what}: not keygate's answer: {}", r.text());
    }
    let seen = py.events(Duration::from_millis(300));
    // Only the exact upgrade reached the backend (and its answer was replaced).
    let strict_upgrade = |r: &Value| {
        header_of(r, "upgrade") == ["websocket"]
            && r["url"].as_str().is_some_and(|u| u.starts_with(SIO))
    };
    assert!(unauthenticated_hits(&seen, strict_upgrade).is_empty(), "{seen:?}");
    assert_eq!(seen.iter().filter(|r| strict_upgrade(r)).count(), 1, "{seen:?}");
    kg.metrics_with(&[
        r#"keygate_requests_total{outcome="denied",reason="websocket_required",route="socketio"} 5"#,
        r#"keygate_requests_total{outcome="denied",reason="missing_credentials",route="socketio"} 1"#,
    ]);
}

fn sio_connected(kg: &Keygate, headers: &[(&str, &str)]) -> WsClient {
    let mut ws = ws_connect(kg.addr, &format!("{SIO}/?EIO=4&transport=websocket"), headers)
        .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    assert!(ws.read_text().unwrap().starts_with("0{"), "Engine.IO open first");
    ws
}

fn connections(events: &[Value]) -> Vec<(String, Value)> {
    events
        .iter()
        .filter(|e| e["event"] == "connection")
        .map(|e| (e["nsp"].as_str().unwrap().to_string(), e["auth"]["identity"].clone()))
        .collect()
}

#[test]
fn finding_2_a_fragmented_connect_is_authenticated_too() {
    let node = Program::node("socketio_server.js", &[SIO]);
    let kg = attack_keygate(node.addr());
    let mut ws = sio_connected(&kg, &[]);
    ws.send_text(&format!(r#"40{{"token":"Bearer {}"}}"#, customer_token("alice")));
    assert!(ws.read_text().unwrap().starts_with("40{\"sid\""));
    // TEXT "4" (FIN=0) + CONTINUATION "0/admin,{...}": one CONNECT to /admin once reassembled.
    let mut forged = WsClient::frame(1, false, b"4");
    forged.extend(WsClient::frame(0, true, br#"0/admin,{"identity":{"user_id":"victim"}}"#));
    ws.write(&forged);
    assert_eq!(
        ws.read_text().as_deref(),
        Some(r#"44/admin,{"message":"unauthorized","data":{"reason":"missing_credentials"}}"#)
    );
    // Spellings socket.io-parser also reads as CONNECT (`Number(" ") === 0`) close the socket.
    for forged in ["4 /admin,{\"identity\":{\"user_id\":\"victim\"}}", "4\u{feff}/admin,{}", "4"] {
        let mut ws = sio_connected(&kg, &[]);
        ws.send_text(&format!(r#"40{{"token":"Bearer {}"}}"#, customer_token("alice")));
        assert!(ws.read_text().unwrap().starts_with("40{\"sid\""));
        ws.send_text(forged);
        let mut close = None;
        while let Some((op, p)) = ws.read_frame() {
            if op == 8 {
                close = Some(u16::from_be_bytes([p[0], p[1]]));
            }
        }
        assert_eq!(close, Some(1008), "{forged:?}");
    }
    let conns = connections(&node.events(Duration::from_millis(500)));
    assert!(conns.iter().all(|(nsp, id)| nsp != "/admin" && id["user_id"] == "alice"), "{conns:?}");
    assert_eq!(conns.len(), 4, "{conns:?}");
}

#[test]
fn finding_3_a_header_authenticated_socket_cannot_claim_another_identity() {
    let node = Program::node("socketio_server.js", &[SIO]);
    let kg = attack_keygate(node.addr());
    let alice = format!("Bearer {}", customer_token("alice"));
    let mut ws = sio_connected(&kg, &[("Authorization", &alice)]);
    ws.send_text(&format!(
        r#"40/admin,{{"token":"Bearer {}","identity":{{"user_id":"victim"}}}}"#,
        customer_token("bob")
    ));
    assert!(ws.read_text().unwrap().starts_with("40/admin,{\"sid\""));
    let conns = connections(&node.events(Duration::from_millis(500)));
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0].1["user_id"], "alice", "the upgrade's identity, not the client's");
    assert_eq!(conns[0].1["credential"], format!("doka_customer/{DOKA_KID}"));
}

#[test]
fn finding_4_fake_preflights_never_reach_an_app_all_handler() {
    let express = Program::node("express_app.js", &[]);
    let kg = attack_keygate(express.addr());
    let mut raw = String::from(
        "OPTIONS /api/v1/users HTTP/1.1\r\nHost: x\r\nOrigin: https://app.test\r\nAccess-Control-Request-Method: GET\r\nX-HTTP-Method-Override: DELETE\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: session=stolen\r\n",
    );
    raw.push_str(&format!("Content-Length: {}\r\n\r\n", 200_000));
    let mut bytes = raw.into_bytes();
    bytes.extend(vec![b'x'; 200_000]);
    let r = Conn::open(kg.addr).raw(&bytes);
    assert_eq!(r.status, 204, "keygate answers the preflight itself");
    let evil = "OPTIONS /api/v1/users HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.test\r\nAccess-Control-Request-Method: DELETE\r\n\r\n";
    Conn::open(kg.addr).raw(evil.as_bytes()).assert_denied(403, "cors_not_allowed");
    // Without a cors block (default cors_preflight: deny) a preflight needs credentials.
    let body = attack_config().replace(
        "cors: { allowed_origins: [\"https://app.test\"], allowed_headers: [authorization, content-type] }\n",
        "",
    );
    let plain = Keygate::builder().config(&body).upstream(express.addr()).start();
    Conn::open(plain.addr).raw(evil.as_bytes()).assert_denied(401, "missing_credentials");
    let seen = express.events(Duration::from_millis(300));
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn finding_5_a_second_connection_line_cannot_delete_identity_headers() {
    let express = Program::node("express_app.js", &[]);
    let kg = attack_keygate(express.addr());
    let raw = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: keep-alive\r\nConnection: x-auth-user-id, x-auth-workspace-id, x-auth-method\r\n\r\n",
        customer_token("alice")
    );
    let r = Conn::open(kg.addr).raw(raw.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = express.events(Duration::from_millis(300));
    assert_eq!(seen.len(), 1);
    assert_eq!(header_of(&seen[0], "x-auth-user-id"), ["alice"]);
    assert_eq!(header_of(&seen[0], "x-auth-workspace-id"), ["ONAVZK8J"]);
    assert_eq!(header_of(&seen[0], "x-auth-method"), ["jwt"]);
}

#[test]
fn finding_6_case_slash_head_and_method_variants_stay_on_their_route() {
    let express = Program::node("express_app.js", &[]);
    let kg = attack_keygate(express.addr());
    let mut c = Conn::open(kg.addr);
    let cases = [
        Case::get("/API/V1/users").denied(401, "missing_credentials"),
        Case::get("/api/v1/users/").denied(401, "missing_credentials"),
        Case::get("/V1/Users/alice/feeds/f").denied(401, "missing_credentials"),
        Case::get("/v1/users/alice/feeds/f/").denied(401, "missing_credentials"),
        Case::get("/v1/events/").denied(405, "method_not_allowed"),
        Case::get("/V1/EVENTS/track").denied(405, "method_not_allowed"),
        Case::new("DELETE", "/V1/ADMIN/x").denied(405, "method_not_allowed"),
        Case::new("POST", "/admin/x").denied(405, "method_not_allowed"),
        Case::new("get", "/admin/x").denied(405, "method_not_allowed"),
        Case::new("PUT", "/v1/users/alice/feeds/f").denied(405, "method_not_allowed"),
    ];
    for case in &cases {
        case.check(&mut c);
        if case.status == 405 {
            let r = c.request(&case.method, &case.path, &[], b"");
            assert!(r.header("allow").is_some(), "{} {}: no Allow", case.method, case.path);
        }
    }
    // HEAD is GET: authenticated like it (a denied HEAD has no body, so check the status).
    let r = c.request("HEAD", "/admin/x", &[], b"");
    assert_eq!(r.status, 401);
    // A method override must name a method the route allows.
    let tok = format!("Bearer {}", customer_token("alice"));
    let r = c.request(
        "GET",
        "/admin/x",
        &[("Authorization", &tok), ("X-HTTP-Method-Override", "DELETE")],
        b"",
    );
    r.assert_denied(405, "method_not_allowed");
    let seen = express.events(Duration::from_millis(300));
    assert!(seen.is_empty(), "{seen:?}");
    // With credentials the same variants reach their own handler, with identity.
    for path in ["/API/V1/users", "/Admin/X/"] {
        assert_eq!(c.request("GET", path, &[("Authorization", &tok)], b"").status, 200, "{path}");
    }
    let seen = express.events(Duration::from_millis(300));
    let handlers: Vec<&str> = seen.iter().map(|e| e["handler"].as_str().unwrap()).collect();
    assert_eq!(handlers, ["customer_api", "admin"]);
    assert!(unauthenticated_hits(&seen, |_| false).is_empty());
}

#[test]
fn finding_7_pings_do_not_extend_the_connect_deadline() {
    let node = Program::node("socketio_server.js", &[SIO]);
    let kg = attack_keygate(node.addr()); // socketio_connect_timeout_seconds: 2
    let mut ws = sio_connected(&kg, &[]);
    let started = Instant::now();
    let mut close = None;
    ws.rd.get_ref().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    while started.elapsed() < Duration::from_secs(6) {
        ws.write(&WsClient::frame(9, true, b"keepalive"));
        ws.send_text("3");
        match ws.read_frame() {
            Some((8, p)) => {
                close = Some(u16::from_be_bytes([p[0], p[1]]));
                break;
            }
            Some(_) => {}
            None if started.elapsed() > Duration::from_millis(1500) => break,
            None => {}
        }
    }
    let waited = started.elapsed();
    assert_eq!(close, Some(1008), "closed with 1008 after {waited:?}");
    assert!(waited < Duration::from_secs(4), "the deadline moved: {waited:?}");
}

#[test]
fn finding_8_slow_and_huge_request_heads_are_cut_off() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = attack_keygate(up.addr); // 16 KiB heads, 2 s head deadline
                                      // Slowloris: a header byte every 200 ms never completes the head; cut off at the deadline.
    let mut slow = std::net::TcpStream::connect(kg.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(6) {
        if slow.write_all(b"a").is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut c = Conn::from_stream(slow);
    let r = c.try_read_response();
    assert!(cut || r.as_ref().is_some_and(|r| r.status == 408), "slowloris kept its connection");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A connection that sends nothing is closed at the deadline too.
    let mut idle = Conn::open(kg.addr);
    let t = Instant::now();
    assert!(idle.is_closed());
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // A head over max_request_header_bytes: 431 and the connection closes; nothing forwarded.
    let before = up.hits();
    let big = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(20_000));
    let mut c = Conn::open(kg.addr);
    let r = c.try_raw(big.as_bytes()).expect("an answer before the close");
    r.assert_denied(431, "request_header_too_large");
    assert!(c.is_closed());
    assert_eq!(up.hits(), before);

    // max_connections: beyond it, new connections are closed at once. The three held
    // connections have each had an answer, so keygate holds them (no sleep to guess it); their
    // head deadline is raised out of the way. (The harness's readiness probe is a connection
    // too, which a loaded keygate may process late: a held one refused for it is opened again,
    // and the refusals are counted as at least one.)
    let capped_config = attack_config()
        .replace("limits:\n", "limits:\n  max_connections: 3\n")
        .replace("request_header_timeout_seconds: 2", "request_header_timeout_seconds: 60");
    let capped = Keygate::builder().config(&capped_config).upstream(up.addr).start();
    let held: Vec<Conn> = (0..3)
        .map(|_| {
            eventually("a held connection", Duration::from_secs(5), || {
                let mut c = Conn::open(capped.addr);
                let r = c.try_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                r.filter(|r| r.status == 200).map(|_| c)
            })
        })
        .collect();
    let mut extra = Conn::open(capped.addr);
    extra.set_read_timeout(Duration::from_secs(5));
    assert!(extra.try_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").is_none(), "over the cap");
    let refused = capped.metric("keygate_connections_refused_total");
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
    // Once keygate has seen the held ones close, connections are served again.
    drop(held);
    eventually("a connection under the cap", Duration::from_secs(5), || {
        let mut c = Conn::open(capped.addr);
        c.set_read_timeout(Duration::from_secs(2));
        c.try_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").filter(|r| r.status == 200)
    });
}

#[test]
fn finding_9_expect_100_continue_is_denied_at_once() {
    let py = Program::python("naive_app.py");
    let kg = attack_keygate(py.addr());
    let mut c = Conn::open(kg.addr);
    c.set_read_timeout(Duration::from_secs(3));
    let t = Instant::now();
    let r = c
        .try_raw(b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n")
        .expect("a final answer without waiting for the body");
    r.assert_denied(401, "missing_credentials");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(c.is_closed(), "the unread body must not be parsed as a next request");
    assert!(py.events(Duration::from_millis(200)).is_empty());
}
