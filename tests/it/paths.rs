//! Path tricks never reach a route they should not: dot-segments, encoded separators, `//`,
//! `;`, `%25`, `#`. Matching is on the decoded path, case-insensitive, ignoring one trailing `/`
//! (as Express does); the original bytes are forwarded.

use crate::common::*;

#[test]
fn path_tricks_are_refused_or_stay_on_their_route() {
    let (up, kg) = full("production");
    let before = up.hits();
    let refused = [
        "/public/../api/v1/admin",
        "/public/%2e%2e/api/v1/admin",
        "/public/.%2E/api/v1/admin",
        "/public/./x",
        "/public%2F..%2Fapi/v1/admin",
        "/public/x%2fy",
        "/public/x%5Cy",
        "/public/x\\..\\y",
        "/public/x;/../../api/v1/admin",
        "/public;jsessionid=1/x",
        "/public/x%00",
        "/public/x%0d%0aX-Auth-User-Id:%20admin",
        "/public/%zz",
        "/public/%c0%af",
        "/public/x%3B/../../api/v1/admin",
        "/public/%252e%252e/api/v1/admin",
        "/public/x%25",
        "//api/v1/admin",
        "/api//v1/x",
        "/api/v1//x",
    ];
    for p in refused {
        let r = request(kg.addr, "GET", p, &[], b"");
        r.assert_denied(400, "malformed_path");
    }
    assert_eq!(up.hits(), before, "a refused path reached the upstream");
    // Case and one trailing `/` do not change the route: protected paths stay protected.
    for p in ["/API/V1/x", "/api/v1", "/api/v1/", "/Api/V1/x/", "/WIDGET/inbox"] {
        let r = request(kg.addr, "GET", p, &[], b"");
        r.assert_denied(401, "missing_credentials");
    }
    assert_eq!(up.hits(), before, "a protected path reached the upstream");
    for p in ["/healthz/", "/HEALTHZ", "/Public/x"] {
        assert_eq!(request(kg.addr, "GET", p, &[], b"").status, 200, "{p}");
    }
    // A fragment never leaves keygate: the backend gets the path keygate matched.
    let r = request(kg.addr, "GET", "/public/x#/../../api/v1/admin", &[], b"");
    assert_eq!(r.json()["target"], "/public/x");
    let before = up.hits();
    // An encoded static segment is matched decoded: /wid%67et is /widget and needs its token.
    request(kg.addr, "GET", "/wid%67et/x", &[], b"").assert_denied(401, "missing_credentials");
    let r = request(
        kg.addr,
        "GET",
        "/wid%67et/x",
        &[("X-User-Id", "u1"), ("X-User-Token", &hmac_token("u1"))],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["target"], "/wid%67et/x", "the original bytes are forwarded");
    assert_eq!(up.hits(), before + 1);
}

#[test]
fn path_params_are_compared_decoded_and_forwarded_raw() {
    let (_up, kg) = full("production");
    let tok = user_token("user 1");
    let r = kg.get(
        "/v1/users/user%201/feeds/f%2Dx?x=%2F&&y",
        &[("Authorization", "Bearer pk_test_1"), ("X-Knock-User-Token", &tok)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/v1/users/user%201/feeds/f%2Dx?x=%2F&&y");
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("user 1"));
    // One trailing slash is the same route (Express's default router agrees); parameters keep
    // their case and are bound as such.
    let headers = [("Authorization", "Bearer pk_test_1"), ("X-Knock-User-Token", tok.as_str())];
    let r = kg.get("/V1/Users/user%201/feeds/f/", &headers);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/V1/Users/user%201/feeds/f/");
    kg.get("/v1/users/USER%201/feeds/f", &headers).assert_denied(403, "identity_mismatch");
}
