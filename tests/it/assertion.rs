//! The signed identity assertion (`identity.assertion`) as a backend that trusts only it sees
//! it: a Node backend (`tests/node/assertion_backend.mjs`) verifies, with `jose` and the JWK set
//! the admin port publishes, the assertion of every allowed request (JWT, API key, HMAC token,
//! client secret), of a Socket.IO CONNECT, and of a forward-auth answer; a client-sent assertion
//! never arrives; anonymous requests carry none.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

fn config(key: &str, fa_port: u16) -> String {
    format!(
        r#"
forward_auth: {{ listen: "127.0.0.1:{fa_port}", front: nginx }}
identity:
  claims: {{ workspace_id: x-auth-workspace-id }}
  assertion:
    key_file: "{key}"
    kid: kg-test
    audience: notifications-backend
    ttl_seconds: 60
    previous_keys: [{{ kid: kg-old, key_file: "{old}" }}]
authenticators:
  user:
    type: jwt
    from: [{{ header: authorization, scheme: Bearer }}, {{ socketio_auth: token, scheme: Bearer }}]
    algorithms: [RS256]
    keys: [{{ pem_file: "{rsa}" }}]
  events_key:
    type: api_key
    from: {{ header: x-api-key }}
    keys: [{{ name: ingest, value: "ek_live_1" }}]
  widget:
    type: hmac_token
    secret: "{hmac}"
    token_from: {{ header: x-user-token }}
    user_id_from: {{ header: x-user-id }}
  server:
    type: client_secret
    key_from: {{ header: x-client-key }}
    secret_from: {{ header: x-client-secret }}
    clients: [{{ name: billing, key: ck_1, secret: "cs_secret_1" }}]
routes:
  - {{ name: jwt_route, path: "/jwt", auth: [user] }}
  - {{ name: key_route, path: "/key", auth: [events_key] }}
  - {{ name: hmac_route, path: "/hmac", auth: [widget] }}
  - {{ name: client_route, path: "/client", auth: [server] }}
  - {{ name: open, path: "/open", auth: anonymous }}
  - {{ name: sio, path: "/socket.io/{{*rest}}", socketio: true, auth: [user] }}
"#,
        old = fixture("ed25519.pub"),
        rsa = fixture("rsa.pub"),
        hmac = HMAC_SECRET,
    )
}

struct Setup {
    kg: Keygate,
    backend: Program,
    fa: std::net::SocketAddr,
}

fn setup(key: &str) -> Setup {
    let fa_port = free_port();
    let b = Keygate::builder().config(config(&fixture(key), fa_port));
    // The backend fetches the JWK set from keygate's admin port, known before keygate starts.
    let jwks = format!("http://{}/.well-known/jwks.json", b.admin_addr());
    let backend = Program::node("assertion_backend.mjs", &[&jwks, "notifications-backend"]);
    let kg = b.upstream(backend.addr()).start();
    Setup { kg, backend, fa: format!("127.0.0.1:{fa_port}").parse().unwrap() }
}

/// The backend's verdict for one request.
fn verdict(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn a_jose_backend_verifies_every_allowed_requests_assertion() {
    for (key, alg) in [("ec256.key", "ES256"), ("ed25519.key", "EdDSA")] {
        let s = setup(key);
        let jwks = s.kg.admin_get("/.well-known/jwks.json").json();
        let kids: Vec<&str> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, ["kg-test", "kg-old"]);
        let t = now();
        let jwt = sign(
            "rsa.key",
            "RS256",
            None,
            serde_json::json!({"sub": "u1", "workspace_id": "w9", "exp": t + 60}),
        );
        let bearer = format!("Bearer {jwt}");
        let hmac = hmac_token("u2");
        // Each request also carries client-sent assertions in several spellings.
        let spoofs = [("X-Auth-Assertion", "forged.forged.forged"), ("x_auth_assertion", "forged")];
        // (path, credential headers, expected sub, expected credential prefix)
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>, &'a str);
        let cases: Vec<Case> = vec![
            ("/jwt", vec![("Authorization", &bearer)], Some("u1"), "user"),
            ("/key", vec![("x-api-key", "ek_live_1")], None, "events_key/ingest"),
            ("/hmac", vec![("x-user-id", "u2"), ("x-user-token", &hmac)], Some("u2"), "widget"),
            (
                "/client",
                vec![("x-client-key", "ck_1"), ("x-client-secret", "cs_secret_1")],
                None,
                "server/billing",
            ),
        ];
        for (path, mut headers, sub, credential) in cases {
            headers.extend(spoofs);
            let v = verdict(&s.kg.get(path, &headers));
            assert_eq!(v["count"], 1, "{path}: exactly keygate's assertion arrives: {v}");
            assert_eq!(v["verified"], true, "{path} ({alg}): {v}");
            assert_eq!(v["alg"], alg);
            assert_eq!(v["kid"], "kg-test");
            let p = &v["payload"];
            assert_eq!(p["sub"].as_str(), sub, "{path}: {v}");
            assert!(p["keygate"]["credential"].as_str().unwrap().starts_with(credential), "{v}");
            assert_eq!(p["keygate"]["route"], path.trim_start_matches('/').to_string() + "_route");
            assert_eq!(p["exp"].as_u64().unwrap() - p["iat"].as_u64().unwrap(), 60);
        }
        let v = verdict(&s.kg.get("/jwt", &[("Authorization", &bearer)]));
        assert_eq!(v["payload"]["keygate"]["claims"]["workspace_id"], "w9");
        // Anonymous: no assertion, and the client's never arrives.
        let v = verdict(&s.kg.get("/open", &spoofs));
        assert_eq!((v["count"].as_u64(), v["verified"].as_bool()), (Some(0), Some(false)), "{v}");

        // Socket.IO: the CONNECT's identity object carries a verifiable assertion.
        let url = format!("http://{}", s.kg.addr);
        let client = programs::run("socketio_client.js", &[&url, "/socket.io", &jwt, "/", "1"]);
        assert!(client.iter().any(|e| e["event"] == "connect"), "{client:?}");
        let events = s.backend.events(Duration::from_secs(3));
        let conn = events
            .iter()
            .find(|e| e["event"] == "connection")
            .expect("a CONNECT reached the backend");
        assert_eq!(conn["verified"], true, "{conn}");
        assert_eq!(conn["payload"]["sub"], "u1");
        assert_eq!(conn["payload"]["keygate"]["route"], "sio");

        // Forward-auth: the answer carries the assertion too; a backend verifies it the same way.
        let r = request(
            s.fa,
            "GET",
            "/",
            &[("X-Original-URI", "/key"), ("X-Original-Method", "GET"), ("x-api-key", "ek_live_1")],
            b"",
        );
        assert_eq!(r.status, 200);
        let token = r.header("x-auth-assertion").expect("an assertion in the answer").to_string();
        let v = verdict(&s.kg.get("/open", &[]));
        assert_eq!(v["count"], 0);
        let direct =
            request(s.backend.addr(), "GET", "/fa", &[("x-auth-assertion", &token)], b"").json();
        assert_eq!(direct["verified"], true, "{direct}");
        assert_eq!(direct["payload"]["keygate"]["route"], "key_route");
    }
}

#[test]
fn jwks_is_404_without_an_assertion() {
    let kg = Keygate::builder()
        .config("authenticators: {}\nroutes: [{ name: h, path: /h, auth: anonymous }]\n")
        .upstream("127.0.0.1:9".parse().unwrap())
        .start();
    assert_eq!(kg.admin_get("/.well-known/jwks.json").status, 404);
}
