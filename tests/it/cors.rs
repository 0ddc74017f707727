//! CORS: with a `cors` block keygate answers preflights itself (they never reach the backend)
//! and decorates responses to allowed origins, denials included; without one, preflights are
//! authenticated (`cors_preflight: deny`, the default) or forwarded stripped to four headers
//! (`cors_preflight: forward`) only when they are bodiless, without `Upgrade`, and ask for a
//! method the route allows.

use crate::common::*;

const APP: &str = "https://app.test";

fn preflight(method: &str, headers: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Origin", APP.to_string()),
        ("Access-Control-Request-Method", method.to_string()),
        ("Access-Control-Request-Headers", headers.to_string()),
    ]
}

fn send(kg: &Keygate, method: &str, path: &str, h: &[(&str, String)], body: &[u8]) -> Resp {
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    request(kg.addr, method, path, &h, body)
}

#[test]
fn keygate_answers_preflights_and_decorates_allowed_origins() {
    let (up, kg) = full("production");
    let before = up.hits();
    let feed = "/v1/users/user-1/feeds/f";
    let r = send(&kg, "OPTIONS", feed, &preflight("GET", "authorization, X-Knock-User-Token"), b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET"));
    assert!(r.header("access-control-allow-headers").unwrap().contains("x-knock-user-token"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    // Refused: another origin, a method the route does not allow, a header not allowed.
    let mut evil = preflight("GET", "authorization");
    evil[0].1 = "https://evil.test".into();
    send(&kg, "OPTIONS", feed, &evil, b"").assert_denied(403, "cors_not_allowed");
    send(&kg, "OPTIONS", feed, &preflight("DELETE", "authorization"), b"")
        .assert_denied(403, "cors_not_allowed");
    send(&kg, "OPTIONS", feed, &preflight("GET", "x-auth-user-id"), b"")
        .assert_denied(403, "cors_not_allowed");
    // A "preflight" dressed up with a body, Upgrade, cookies and a method override is still
    // answered by keygate: it never reaches the backend.
    let mut dressed = preflight("GET", "authorization");
    dressed.extend([
        ("Upgrade", "websocket".to_string()),
        ("Cookie", "session=x".to_string()),
        ("X-HTTP-Method-Override", "DELETE".to_string()),
    ]);
    let r = send(&kg, "OPTIONS", feed, &dressed, &vec![b'x'; 256 * 1024]);
    assert_eq!(r.status, 204);
    send(&kg, "OPTIONS", "/nowhere", &preflight("GET", ""), b"").assert_denied(403, "no_route");
    assert_eq!(up.hits(), before, "a preflight reached the backend");

    // Responses to an allowed origin carry the CORS headers, denials included.
    let origin = [("Origin", APP.to_string())];
    let r = send(&kg, "GET", feed, &origin, b"");
    r.assert_denied(401, "missing_credentials");
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert!(r.header("vary").is_some_and(|v| v.contains("Origin")));
    let r = send(&kg, "GET", "/public/x", &origin, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    let r = send(&kg, "GET", "/public/x", &[("Origin", "https://evil.test".to_string())], b"");
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn without_a_cors_block_preflights_are_denied_or_forwarded_stripped() {
    let body = full_config("production").replacen(
        "cors: { allowed_origins: [\"https://app.test\"], allowed_headers: [authorization, content-type, x-knock-user-token], allow_credentials: true }\n",
        "",
        1,
    );
    assert!(!body.contains("cors:"));
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let env = [("KG_TEST_HMAC_SECRET", HMAC_SECRET)];
    let feed = "/v1/users/user-1/feeds/f";

    // Default (deny): a preflight is a request like any other: OPTIONS on a GET route is 405,
    // on a route without `methods` it needs credentials.
    let deny = Keygate::builder().config(&body).upstream(up.addr).env(env[0].0, env[0].1).start();
    send(&deny, "OPTIONS", feed, &preflight("GET", "authorization"), b"")
        .assert_denied(405, "method_not_allowed");
    send(&deny, "OPTIONS", "/api/v1/x", &preflight("GET", "authorization"), b"")
        .assert_denied(401, "missing_credentials");
    assert_eq!(up.hits(), 0);

    // forward: a genuine preflight reaches the backend with four headers only.
    let fwd = Keygate::builder()
        .config(format!("cors_preflight: forward\n{body}"))
        .upstream(up.addr)
        .env(env[0].0, env[0].1)
        .start();
    let mut h = preflight("GET", "authorization");
    h.extend([("X-Auth-User-Id", "spoof".to_string()), ("Cookie", "session=x".to_string())]);
    up.take_received();
    let r = send(&fwd, "OPTIONS", feed, &h, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let received = up.take_received();
    let names: Vec<String> = received[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap().to_ascii_lowercase())
        .collect();
    assert_eq!(
        names,
        ["host", "origin", "access-control-request-method", "access-control-request-headers"],
        "only the preflight's own headers are forwarded"
    );
    // The backend's answer reaches the client as a preflight answer: status and CORS headers
    // only, never the content of a handler that served the OPTIONS as a request.
    assert!(r.body.is_empty(), "{}", r.text());
    assert!(
        r.headers.iter().all(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k.starts_with("access-control-")
                || ["vary", "content-length", "date", "server", "connection"].contains(&k.as_str())
        }),
        "{:?}",
        r.headers
    );
    let hits = up.hits();
    // A "preflight" that names another method (`?_method=`, an override header) is no
    // preflight: it is decided as the request it is (the fourth review's B3).
    let mut h = preflight("GET", "");
    h.push(("X-HTTP-Method-Override", "DELETE".to_string()));
    send(&fwd, "OPTIONS", feed, &h, b"").assert_denied(405, "method_not_allowed");
    send(&fwd, "OPTIONS", &format!("{feed}?_method=DELETE"), &preflight("GET", ""), b"")
        .assert_denied(405, "method_not_allowed");
    send(&fwd, "OPTIONS", "/api/v1/x?_method=GET", &preflight("GET", ""), b"")
        .assert_denied(401, "missing_credentials");
    // Not forwarded: a body, an Upgrade, a method the route does not allow.
    send(&fwd, "OPTIONS", "/api/v1/x", &preflight("GET", ""), b"{}")
        .assert_denied(401, "missing_credentials");
    let mut upgrade = preflight("GET", "");
    upgrade.push(("Upgrade", "websocket".into()));
    send(&fwd, "OPTIONS", "/api/v1/x", &upgrade, b"").assert_denied(401, "missing_credentials");
    send(&fwd, "OPTIONS", feed, &preflight("DELETE", ""), b"")
        .assert_denied(405, "method_not_allowed");
    assert_eq!(up.hits(), hits);
}
