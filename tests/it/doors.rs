//! Regression tests for the third attack review's findings on the main proxy (the
//! forward-auth door's are in `forward_auth.rs`), each against the real backend it was found
//! with: Flask/Werkzeug (which routes `admin/users` as `/admin/users`), Express 4 with
//! `method-override`, socket.io with `allowEIO3`, and the echo upstream. Every test here failed
//! on the main of 2026-12-07 before the fix.

use crate::common::attack::*;
use crate::common::*;
use serde_json::Value;
use std::time::Duration;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The handlers a backend ran (`handler` of each record).
fn handlers(records: &[Value]) -> Vec<String> {
    records.iter().filter_map(|r| r["handler"].as_str().map(str::to_string)).collect()
}

fn raw(kg: &Keygate, bytes: &str) -> Option<Resp> {
    let mut c = Conn::open(kg.addr);
    c.set_read_timeout(Duration::from_secs(3));
    c.try_raw(bytes.as_bytes())
}

#[test]
fn finding_2_a_target_without_a_leading_slash_is_refused_not_reinterpreted() {
    let flask = Program::flask();
    let kg = attack_keygate(flask.addr());
    for target in ["admin/users", "admin/users?x=1", "*", "app.test:80", "items/7"] {
        for method in ["DELETE", "GET", "OPTIONS"] {
            let r = raw(&kg, &format!("{method} {target} HTTP/1.1\r\nHost: app.test\r\n\r\n"));
            let r = r.unwrap_or_else(|| panic!("{method} {target}: no answer"));
            r.assert_denied(400, "malformed_path");
        }
    }
    // The absolute form keygate accepts is decided by the path the backend reads from it.
    let r = raw(&kg, "GET http://app.test/admin/users HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    r.assert_denied(401, "missing_credentials");
    let r = raw(&kg, "GET http://app.test/healthz HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(handlers(&flask.events(Duration::from_millis(300))), ["health"]);
}

#[test]
fn finding_3_dotted_identity_header_spellings_never_reach_the_backend() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = attack_keygate(up.addr);
    let alice = format!("Bearer {}", customer_token("alice"));
    for path in ["/healthz", "/api/v1/me"] {
        let r = kg.get(
            path,
            &[
                ("Authorization", &alice),
                ("X.Auth.User.Id", "admin"),
                ("x.auth.workspace.id", "victim"),
                ("X-Auth~Method", "victim"),
                ("x_auth_credential", "victim"),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        for (name, value) in r.upstream_headers() {
            let folded: String =
                name.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() {
                            b.to_ascii_lowercase() as char
                        } else {
                            '-'
                        }
                    })
                    .collect();
            assert!(
                !folded.starts_with("x-auth-") || !(value.contains("victim") || value == "admin"),
                "{name}: {value} reached the backend on {path}"
            );
        }
    }
}

#[test]
fn finding_5_method_overrides_in_the_query_and_in_cgi_spellings_must_be_allowed() {
    let express = Program::node("express_app.js", &[]);
    let kg = attack_keygate(express.addr());
    // Express's method-override turns these into DELETE: keygate refuses them on a route that
    // allows only GET and POST, whatever the spelling.
    let attempts: [(&str, &[(&str, &str)]); 8] = [
        ("/items/7?_method=DELETE", &[]),
        ("/items/7?_method=delete", &[]),
        ("/items/7?%5Fmethod=DELETE", &[]),
        // qs (Express's query parser) reads a leading bracketed key as the name.
        ("/items/7?[_method]=DELETE", &[]),
        ("/items/7?%5B_method%5D=DELETE", &[]),
        ("/items/7?[_method][]=PUT", &[]),
        ("/items/7", &[("X_HTTP_Method_Override", "DELETE")]),
        ("/items/7", &[("X.HTTP.Method.Override", "DELETE")]),
    ];
    for (target, headers) in attempts {
        kg.post(target, headers, b"").assert_denied(405, "method_not_allowed");
    }
    // Overrides that disagree cannot be read one way only.
    kg.post("/items/7?_method=GET", &[("X-HTTP-Method-Override", "DELETE")], b"")
        .assert_denied(400, "malformed_request");
    // A harmless override passes; the admin handler never ran.
    assert_eq!(kg.post("/items/7?_method=GET", &[], b"").status, 200);
    assert_eq!(handlers(&express.events(Duration::from_millis(300))), ["public_items"]);
}

#[test]
fn finding_5_form_bodies_that_could_name_a_method_never_reach_the_handler() {
    // express.urlencoded (extended: false) + method-override's `req.body._method` getter run
    // DELETE for these; keygate cuts each body off before its name completes.
    let express = Program::node("express_app.js", &[]);
    let kg = attack_keygate(express.addr());
    let url = ("Content-Type", "application/x-www-form-urlencoded");
    for body in [
        "_method=DELETE",
        "a=1&_METHOD=delete",
        "%5Fmethod=DELETE",
        "\u{feff}_method=DELETE",
        "_method[]=DELETE",
    ] {
        let r = kg.post("/items/7", &[url], body.as_bytes());
        r.assert_denied(400, "malformed_body");
    }
    // The same without a Content-Type (Rack reads it as a form), and chunked.
    kg.post("/items/7", &[], b"_method=DELETE").assert_denied(400, "malformed_body");
    // A compressed form (body-parser inflates it).
    let gz = [url, ("Content-Encoding", "gzip")];
    kg.post("/items/7", &gz, b"\x1f\x8b").assert_denied(400, "malformed_body");
    // Forms that name no method are forwarded byte for byte, whatever their size.
    for body in ["title=hello", "paymentMethod=card", ""] {
        let r = kg.post("/items/7", &[url], body.as_bytes());
        assert_eq!(r.status, 200, "{body}: {}", r.text());
    }
    let big = format!("title={}", "x".repeat(90_000)); // over 64 KiB, under body-parser's 100 KiB
    assert_eq!(kg.post("/items/7", &[url], big.as_bytes()).status, 200);
    // Express answers a POST whose body it does not parse (no Content-Type) before reading
    // it: that handler ran as the POST it is. No handler ever ran as DELETE.
    let events = express.events(Duration::from_millis(300));
    assert!(events.len() >= 4, "{events:?}");
    for e in &events {
        assert_eq!((&e["handler"], &e["method"]), (&"public_items".into(), &"POST".into()), "{e}");
    }
}

#[test]
fn finding_5_multipart_bodies_werkzeug_reads_a_method_from_are_cut_off() {
    // Werkzeug decodes RFC 2231 names, ends part headers at a bare LF, and reads the first of
    // two form types (the fourth and fifth reviews).
    let flask = Program::flask();
    let kg = attack_keygate(flask.addr());
    let mp = ("Content-Type", "multipart/form-data; boundary=XyZ");
    let body = |disposition: &str| {
        format!(
            "--XyZ\r\nContent-Disposition: form-data; {disposition}\r\n\r\nDELETE\r\n--XyZ--\r\n"
        )
    };
    let attempts = [
        body("name=\"_method\""),
        body("name*=UTF-8''%5F%6Dethod"),
        body("name*=utf-8''_%6Dethod"),
        body("name*0=\"_me\"; name*1=\"thod\""),
        body("name*0*=utf-8''%5F; name*1=method"),
        "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\n\nDELETE\n--XyZ--\n\r\n\r\nPOST\r\n--XyZ--\r\n".to_string(),
    ];
    for attempt in &attempts {
        kg.post("/items/7", &[mp], attempt.as_bytes()).assert_denied(400, "malformed_body");
    }
    // A decoded `%0A` does not end the Content-Disposition line (the sixth review).
    let lf = body("x=%0A; name*0=_me; name*1=thod");
    kg.post("/items/7", &[mp], lf.as_bytes()).assert_denied(400, "malformed_body");
    // Werkzeug strips Unicode whitespace around a type; Rack reads an empty one as none.
    for ct in [&b"application/x-www-form-urlencoded\xa0"[..], b""] {
        let mut raw = b"POST /items/7 HTTP/1.1\r\nHost: app.test\r\nContent-Type: ".to_vec();
        raw.extend_from_slice(ct);
        raw.extend_from_slice(b"\r\nContent-Length: 14\r\n\r\n_method=DELETE");
        let mut c = Conn::open(kg.addr);
        c.set_read_timeout(Duration::from_secs(3));
        let r = c.try_raw(&raw).expect("an answer");
        r.assert_denied(400, "malformed_body");
    }
    let two =
        ("Content-Type", "multipart/form-data; boundary=XyZ; application/x-www-form-urlencoded");
    kg.post("/items/7", &[two], attempts[0].as_bytes()).assert_denied(400, "malformed_body");
    // An upload that names no method passes, however large.
    let file = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n{}\r\n--XyZ--\r\n",
        "y".repeat(200_000)
    );
    let r = kg.post("/items/7", &[mp], file.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    // Werkzeug reads what arrived of a cut-off body (a short read is no error to it): with no
    // whole name in it, the handler ran as the POST it is. None ran as DELETE.
    let events = flask.events(Duration::from_millis(300));
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!((&e["handler"], &e["method"]), (&"public_items".into(), &"POST".into()), "{e}");
    }
}

#[test]
fn finding_6_the_socketio_gate_speaks_only_engineio_v4() {
    let sio = Program::node_with_env("socketio_server.js", &[SIO], &[("SIO_ALLOW_EIO3", "1")]);
    let kg = attack_keygate(sio.addr());
    let alice = format!("Authorization: Bearer {}\r\n", customer_token("alice"));
    let ws = |target: &str, version: &str, extra: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: {version}\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    };
    let cases = [
        // v3 needs no CONNECT: its "/" joins at once, with nothing for the gate to check.
        (ws(&format!("{SIO}/?EIO=3&transport=websocket"), "13", ""), 400, "websocket_required"),
        (ws(&format!("{SIO}/?EIO=3&transport=websocket"), "13", &alice), 400, "websocket_required"),
        // No EIO is v3 to allowEIO3; version 8 is no RFC 6455 upgrade for keygate, but is for ws.
        (ws(&format!("{SIO}/?transport=websocket"), "13", &alice), 400, "websocket_required"),
        (ws(&format!("{SIO}/?EIO=4&transport=websocket"), "8", &alice), 400, "websocket_required"),
        (
            ws(&format!("{SIO}/?EIO=4&EIO=3&transport=websocket"), "13", ""),
            400,
            "websocket_required",
        ),
        (ws(&format!("{SIO}/?EIO=4&transport=polling"), "13", ""), 400, "websocket_required"),
    ];
    for (request, status, reason) in &cases {
        let r = raw(&kg, request).unwrap_or_else(|| panic!("no answer to {request}"));
        r.assert_denied(*status, reason);
    }
    let events = sio.events(Duration::from_millis(500));
    assert!(
        events.iter().all(|e| e["event"] != "connection" && e["event"] != "upgrade"),
        "the socket.io server saw {events:?}"
    );
    // v4 with a valid CONNECT still works.
    let mut ws = ws_connect(kg.addr, &format!("{SIO}/?EIO=4&transport=websocket"), &[]).unwrap();
    assert!(ws.read_text().is_some_and(|t| t.starts_with("0{")));
    ws.send_text(&format!(r#"40{{"token":"Bearer {}"}}"#, customer_token("alice")));
    assert!(ws.read_text().is_some_and(|t| t.starts_with("40{")));
}

#[test]
fn finding_6_a_path_beyond_the_engineio_endpoint_needs_its_credential_up_front() {
    let express = Program::node("express_app.js", &[]);
    let kg = attack_keygate(express.addr());
    let purge = format!(
        "GET {SIO}/admin/purge?EIO=4&transport=websocket HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
    );
    raw(&kg, &purge).unwrap().assert_denied(401, "missing_credentials");
    assert!(handlers(&express.events(Duration::from_millis(300))).is_empty());
}

#[test]
fn finding_7_idle_keep_alive_connections_are_closed() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let config = attack_config()
        .replace("limits:\n", "limits:\n  idle_timeout_seconds: 1\n  max_connections: 4\n");
    let kg = Keygate::builder().config(config).upstream(up.addr).start();
    // Four clients each get a denial on a keep-alive connection, then go silent.
    let mut held: Vec<Conn> = (0..4)
        .map(|_| {
            let mut c = Conn::open(kg.addr);
            c.request("GET", "/admin/x", &[], b"").assert_denied(401, "missing_credentials");
            c
        })
        .collect();
    // Within the idle timeout the slots are taken; after it they are free again.
    std::thread::sleep(Duration::from_millis(2000));
    let r = request(kg.addr, "GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200, "a new client was refused: idle connections still held");
    for c in held.iter_mut() {
        c.set_read_timeout(Duration::from_millis(500));
        assert!(c.try_read_response().is_none(), "an idle connection was answered, not closed");
    }
    // A connection that keeps talking is not idle.
    let mut busy = Conn::open(kg.addr);
    for _ in 0..3 {
        assert_eq!(busy.request("GET", "/healthz", &[], b"").status, 200);
        std::thread::sleep(Duration::from_millis(600));
    }
}

#[test]
fn finding_9_no_credential_in_pingoras_error_line_and_vary_origin_and_trace_aliases() {
    // An API key in a path parameter, with the upstream down: pingora's error line names the
    // route template, never the path.
    let kg = Keygate::builder()
        .config(
            "authenticators:\n  k:\n    type: api_key\n    from: { path_param: key }\n    keys: [{ name: a, value: sk_live_PATHSECRET }]\nroutes:\n  - { name: keyed, path: \"/k/{key}/x\", auth: [k] }\n",
        )
        .start();
    assert_eq!(kg.get("/k/sk_live_PATHSECRET/x", &[]).status, 502);
    std::thread::sleep(Duration::from_millis(300));
    let logs = kg.logs();
    assert!(!logs.contains("PATHSECRET"), "the key reached keygate's logs:\n{logs}");
    assert!(logs.contains("/k/{key}/x"), "the error line names the route:\n{logs}");
    // Every answer on a CORS config varies by Origin: allowed, absent or disallowed.
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = attack_keygate(up.addr);
    for origin in [None, Some("https://evil.test"), Some("https://app.test")] {
        let h: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        for path in ["/admin/x", "/healthz"] {
            let r = kg.get(path, &h);
            let vary: Vec<&str> = r
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("vary"))
                .map(|(_, v)| v.as_str())
                .collect();
            assert!(
                vary.iter().any(|v| v.to_ascii_lowercase().contains("origin")),
                "{path} with {origin:?}: Vary {vary:?}"
            );
        }
    }
    // `trace_parent` is no second traceparent.
    let r = kg.get("/healthz", &[("trace_parent", "00-forged-01"), ("Trace.State", "x=1")]);
    assert_eq!(r.status, 200);
    let names: Vec<String> = r.upstream_headers().into_iter().map(|(k, _)| k).collect();
    assert!(!names.iter().any(|n| n.to_ascii_lowercase().starts_with("trace")), "{names:?}");
}

#[test]
fn finding_9_a_config_rewritten_in_place_is_never_applied_half_written() {
    rewritten_in_place(false);
    // Relative `--config` (the eighth review): events name absolute paths, and an editor's swap
    // file created beside it during the pause must not end the wait.
    rewritten_in_place(true);
}

fn rewritten_in_place(relative: bool) {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let key = "authenticators:\n  key:\n    type: api_key\n    from: { header: x-api-key }\n    keys: [{ name: k, value: key_1 }]\n";
    let before =
        format!("{key}routes:\n  - {{ name: admin, path: \"/admin/{{*rest}}\", auth: [key] }}\n");
    let builder = Keygate::builder().config(&before).upstream(up.addr);
    let builder = if relative { builder.relative_config_path() } else { builder };
    let kg = builder.start();
    assert_eq!(kg.get("/admin/x", &[]).status, 401);
    // The new config: its first half alone (no admin route, unmatched anonymous) opens /admin.
    let after = format!(
        "unmatched: anonymous\n{key}routes:\n  - {{ name: public, path: /public, auth: anonymous }}\n  - {{ name: admin, path: \"/admin/{{*rest}}\", auth: [key] }}\n"
    );
    let text = kg.config_text(&after);
    let cut = text.find("  - { name: admin").unwrap();
    let mut f =
        std::fs::OpenOptions::new().write(true).truncate(true).open(kg.config_path()).unwrap();
    std::io::Write::write_all(&mut f, &text.as_bytes()[..cut]).unwrap();
    f.sync_all().unwrap();
    // A slow writer: the first half sits there for a while, and an editor's swap file appears.
    let swap = kg.config_path().with_file_name(".config.yaml.swp");
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        let s = kg.get("/admin/x", &[]).status;
        assert_eq!(s, 401, "the half-written config was applied (relative: {relative})");
        if !swap.exists() {
            std::fs::write(&swap, b"swap").unwrap();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    std::io::Write::write_all(&mut f, &text.as_bytes()[cut..]).unwrap();
    drop(f);
    eventually("the whole new config", Duration::from_secs(5), || {
        (kg.get("/public", &[]).status == 200).then_some(())
    });
    assert_eq!(kg.get("/admin/x", &[]).status, 401);
    assert_eq!(kg.get("/admin/x", &[("x-api-key", "key_1")]).status, 200);
}

#[test]
fn finding_9_a_file_naming_the_configs_directory_another_way_leaves_reloads_working() {
    // The ninth review: a `value_file` that spells the config's directory through `..` made it
    // watched twice, and notify then named every event of it by the second spelling: no edit
    // of the config was ever applied.
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(dir.path().join("ingest.key"), "key_1\n").unwrap();
    let key = dir.path().join("..").join(name).join("ingest.key");
    let body = |extra: &str| {
        format!(
            "authenticators:\n  key:\n    type: api_key\n    from: {{ header: x-api-key }}\n    keys: [{{ name: k, value_file: \"{}\" }}]\nroutes:\n{extra}  - {{ name: events, path: /events, auth: [key] }}\n",
            key.display()
        )
    };
    let builder = Keygate::builder().config(body("")).upstream(up.addr);
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, builder.text()).unwrap();
    let kg = builder.config_file(&config).start();
    assert_eq!(kg.get("/events", &[("x-api-key", "key_1")]).status, 200);
    assert_ne!(kg.get("/public", &[]).status, 200);
    std::fs::write(
        &config,
        kg.config_text(&body("  - { name: public, path: /public, auth: anonymous }\n")),
    )
    .unwrap();
    eventually("the edited config", Duration::from_secs(5), || {
        (kg.get("/public", &[]).status == 200).then_some(())
    });
    std::fs::write(dir.path().join("ingest.key"), "key_2\n").unwrap();
    eventually("the rotated key", Duration::from_secs(5), || {
        (kg.get("/events", &[("x-api-key", "key_2")]).status == 200).then_some(())
    });
}

#[test]
fn finding_9_a_rotated_key_file_takes_effect_without_sighup() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ingest.key");
    std::fs::write(&file, "key_old\n").unwrap();
    let body = format!(
        "authenticators:\n  key:\n    type: api_key\n    from: {{ header: x-api-key }}\n    keys: [{{ name: k, value_file: \"{}\" }}]\nroutes:\n  - {{ name: events, path: /events, auth: [key] }}\n",
        file.display()
    );
    let kg = Keygate::builder().config(body).upstream(up.addr).start();
    assert_eq!(kg.get("/events", &[("x-api-key", "key_old")]).status, 200);
    // Rotated the way a Secret mount or a deploy script does it: a new file renamed over it.
    let tmp = dir.path().join("ingest.key.tmp");
    std::fs::write(&tmp, "key_new\n").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    eventually("the rotated key", Duration::from_secs(5), || {
        (kg.get("/events", &[("x-api-key", "key_new")]).status == 200).then_some(())
    });
    kg.get("/events", &[("x-api-key", "key_old")]).assert_denied(401, "invalid_api_key");
}
