//! The property keygate exists for: a backend never receives a request on a protected route
//! without keygate's verified identity, and never a forged identity anywhere. A generated corpus
//! of request mutations (methods including `HEAD`, `OPTIONS` and lowercase ones; path case,
//! trailing `/`, `//`, encodings, dot-segments, targets without a leading `/`;
//! `Upgrade`/`Connection` combinations; Engine.IO versions; HTTP/1.0; `Expect`; duplicated
//! headers; preflight shapes; method overrides in every spelling and in the query; forged
//! identity headers in every spelling; a front proxy's headers sent by the client; bodies; no,
//! forged, garbage and valid credentials) goes through both doors, the proxy listener and a real
//! nginx in front of the forward-auth listener (the documented snippet), to five real backends:
//! the echo upstream, Express 4 with `app.all` and `method-override`, Flask/Werkzeug, socket.io
//! with `allowEIO3`, and a Python app that ignores `Upgrade`. Each backend's own record of what
//! it received is checked.
//!
//! One exception is by design: a real RFC 6455 upgrade on the `socketio: true` route is
//! forwarded without identity (its CONNECT packets carry the credential); if the backend does
//! not answer 101, keygate answers 401 instead (tests/it/attacks.rs checks that answer).

use crate::common::attack::*;
use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use std::time::Duration;

const TARGETS: [&str; 11] = [
    "/api/v1/users",
    "/api/v1/wss/socket.io/",
    "/v1/users/alice/feeds/f",
    "/v1/messages/batch/read",
    "/widget/inbox",
    "/v1/events/track",
    "/admin/x",
    "/healthz",
    "/public/page",
    "/items/7",
    "/",
];

/// A path mutation: how a careless backend might read what keygate matched differently.
fn mutate(path: &str, how: u8, at: usize) -> String {
    let i = if path.len() > 1 { 1 + at % (path.len() - 1) } else { 1 };
    let (a, b) = path.split_at(i.min(path.len()));
    match how % 15 {
        0 => path.to_string(),
        1 => path.to_ascii_uppercase(),
        2 => format!("{path}/"),
        3 => format!("{a}/{b}"),
        4 => {
            let c = b.chars().next().unwrap_or('x');
            format!("{a}%{:02X}{}", c as u32 & 0x7f, &b[c.len_utf8().min(b.len())..])
        }
        5 => format!("{a}%2e%2e/{b}"),
        6 => format!("{a};x/{b}"),
        7 => format!("{a}%3B{b}"),
        8 => format!("{a}%25{b}"),
        9 => format!("{a}%2F{b}"),
        10 => format!("{a}/./{b}"),
        11 => format!("/public/..{path}"),
        12 => format!("{}{}", &path[..i.min(path.len())].to_ascii_uppercase(), b),
        13 => path.trim_start_matches('/').to_string(),
        _ => format!("{path}#frag"),
    }
}

#[derive(Debug, Clone)]
struct Probe {
    method: &'static str,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn probe() -> impl Strategy<Value = Probe> {
    let method = prop::sample::select(vec![
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "Get", "FOO",
    ]);
    let query = prop::sample::select(vec![
        "",
        "?EIO=4&transport=polling",
        "?EIO=4&transport=websocket",
        "?%45IO=4&transport=polling",
        "?api_key=pk_test_1",
        "?user_token=garbage&api_key=pk_test_1",
        "?_method=DELETE",
        "?EIO=3&transport=websocket",
        "?transport=websocket",
    ]);
    let extra = prop::sample::subsequence(
        vec![
            ("Upgrade", "websocket"),
            ("Upgrade", "h2c, websocket"),
            ("Connection", "Upgrade"),
            ("Connection", "keep-alive, x-auth-user-id, x-auth-method"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Expect", "100-continue"),
            ("Origin", "https://app.test"),
            ("Access-Control-Request-Method", "GET"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X_HTTP_Method_Override", "DELETE"),
            ("X-Auth-User-Id", "victim"),
            ("X_Auth_User_Id", "victim"),
            ("X.Auth.User.Id", "victim"),
            ("x-auth-method", "victim"),
            ("X-Auth-Workspace-Id", "victim"),
            ("Forwarded", "for=victim"),
            ("X-Forwarded-Uri", "/healthz"),
            ("X-Forwarded-Method", "GET"),
            ("X-Original-URI", "/healthz"),
            ("Sec-WebSocket-Version", "8"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        0..6,
    );
    let credential = 0u8..8;
    (
        method,
        prop::sample::select(TARGETS.to_vec()),
        (any::<u8>(), any::<usize>()),
        query,
        any::<bool>(),
        extra,
        credential,
        prop::option::of(prop_oneof![
            prop::collection::vec(b'a'..=b'z', 0..40),
            Just(b"_method=DELETE".to_vec()),
        ]),
    )
        .prop_map(|(method, target, (how, at), query, http10, extra, cred, body)| {
            let mut headers: Vec<(String, String)> =
                extra.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let alice = customer_token("alice");
            match cred {
                0 => headers.push(("Authorization".into(), format!("Bearer {alice}"))),
                1 => {
                    headers.push(("Authorization".into(), "Bearer pk_test_1".into()));
                    headers.push(("X-Knock-User-Token".into(), user_token("alice")));
                }
                2 => {
                    headers.push(("X-User-Id".into(), "alice".into()));
                    headers.push(("X-User-Token".into(), hmac_token("alice")));
                }
                3 => {
                    headers.push(("X-Client-Key".into(), "ck_live_7f3a".into()));
                    headers.push(("X-Client-Secret".into(), "billing-secret-value".into()));
                }
                4 => headers.push(("Authorization".into(), "Bearer not.a.token".into())),
                5 => {
                    headers.push(("Authorization".into(), format!("Bearer {alice}")));
                    headers.push(("Authorization".into(), "Bearer second".into()));
                }
                _ => {}
            }
            let body = body.unwrap_or_default();
            if !body.is_empty() {
                if how % 3 == 0 {
                    headers.push(("Content-Length".into(), format!("{0}, {0}", body.len())));
                } else {
                    headers.push(("Content-Length".into(), body.len().to_string()));
                }
            }
            Probe {
                method,
                target: format!("{}{query}", mutate(target, how, at)),
                http10,
                headers,
                body,
            }
        })
}

fn send(addr: std::net::SocketAddr, p: &Probe) {
    let mut raw = format!(
        "{} {} HTTP/1.{}\r\nHost: app.test\r\n",
        p.method,
        p.target,
        if p.http10 { 0 } else { 1 }
    );
    for (k, v) in &p.headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(&p.body);
    let mut c = Conn::open(addr);
    c.set_read_timeout(Duration::from_millis(700));
    let _ = c.try_raw(&bytes);
}

/// Every (name, value) of a backend's record, names folded as a CGI-style backend reads them
/// (lower case, every other character `-`).
fn folded_headers(record: &Value) -> Vec<(String, String)> {
    let fold = |k: &str| -> String {
        k.bytes()
            .map(|b| if b.is_ascii_alphanumeric() { b.to_ascii_lowercase() as char } else { '-' })
            .collect()
    };
    match &record["headers"] {
        Value::Object(m) => {
            m.iter().map(|(k, v)| (fold(k), v.as_str().unwrap_or_default().to_string())).collect()
        }
        Value::Array(pairs) => pairs
            .iter()
            .map(|p| {
                (fold(p[0].as_str().unwrap_or_default()), p[1].as_str().unwrap_or_default().into())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Checks what a backend received (`records`) against the property.
fn check(records: &[Value], p: &Probe) -> Result<(), TestCaseError> {
    for r in records {
        let url = r["url"].as_str().unwrap_or("");
        for (name, v) in folded_headers(r) {
            if name.starts_with("x-auth-") || name == "forwarded" {
                prop_assert!(
                    !v.contains("victim"),
                    "forged {name} reached the backend: {r}\nprobe {p:?}"
                );
            }
        }
        let upgrade = header_of(r, "upgrade").iter().any(|u| u.eq_ignore_ascii_case("websocket"))
            && url.to_ascii_lowercase().starts_with(SIO);
        if is_protected(r) && !upgrade {
            let method = header_of(r, "x-auth-method");
            prop_assert!(
                matches!(
                    method.as_slice(),
                    ["jwt"] | ["public_key+jwt"] | ["hmac_token"] | ["client_secret"]
                ),
                "a protected route was reached without keygate's identity: {r}\nprobe {p:?}"
            );
        }
    }
    Ok(())
}

fn run(addr: std::net::SocketAddr, cases: u32, records: impl Fn() -> Vec<Value>) {
    let mut runner =
        TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    runner
        .run(&probe(), |p| {
            send(addr, &p);
            check(&records(), &p)
        })
        .unwrap();
}

/// The corpus through both doors in front of one backend (whose records `records` returns).
fn both_doors(backend: std::net::SocketAddr, records: impl Fn() -> Vec<Value>) {
    let kg = attack_keygate(backend);
    run(kg.addr, 150, &records);
    let fa_port = free_port();
    let fa = Keygate::builder()
        .config(format!(
            "forward_auth: {{ listen: \"127.0.0.1:{fa_port}\", front: nginx }}\n{}",
            attack_config()
        ))
        .upstream(backend)
        .start();
    let nginx =
        crate::forward_auth::nginx_front(format!("127.0.0.1:{fa_port}").parse().unwrap(), backend);
    let _ = (&fa, records());
    run(nginx.addr, 100, &records);
}

/// Socket.IO server events that are HTTP requests. A `connection` event only ever follows a
/// CONNECT keygate authorized, whose `auth` carries keygate's identity: the corpus sends none,
/// so any connection (an Engine.IO v3 client joins "/" without one) is a bypass.
fn sio_records(events: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for e in events {
        if e["event"] == "connection" {
            panic!("a Socket.IO connection without keygate's CONNECT: {e}");
        } else if e["event"] == "http" || e["event"] == "upgrade" {
            out.push(e);
        }
    }
    out
}

#[test]
fn no_backend_sees_a_protected_request_without_keygates_identity_through_either_door() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    both_doors(up.addr, || up.take_received());

    let express = Program::node("express_app.js", &[]);
    both_doors(express.addr(), || express.events(Duration::from_millis(20)));

    let flask = Program::flask();
    both_doors(flask.addr(), || flask.events(Duration::from_millis(20)));

    let python = Program::python("naive_app.py");
    both_doors(python.addr(), || python.events(Duration::from_millis(20)));

    let sio = Program::node_with_env("socketio_server.js", &[SIO], &[("SIO_ALLOW_EIO3", "1")]);
    both_doors(sio.addr(), || sio_records(sio.events(Duration::from_millis(20))));
}
