//! Path tricks never reach a route they should not: dot-segments, encoded separators, `//`,
//! `;`, trailing `/`, case. Matching is on the decoded path; the original bytes are forwarded.

mod common;
use common::*;

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
    ];
    for p in refused {
        let r = request(kg.addr, "GET", p, &[], b"");
        r.assert_denied(400, "malformed_path");
    }
    // `//`, trailing `/` and case changes match no route: denied by default.
    for p in [
        "//api/v1/admin",
        "/api//v1/x",
        "/healthz/",
        "/HEALTHZ",
        "/Public/x",
        "/api/v1",
    ] {
        let r = request(kg.addr, "GET", p, &[], b"");
        r.assert_denied(403, "no_route");
    }
    assert_eq!(up.hits(), before, "a refused path reached the upstream");

    // `/api/v1//x` is still the customer route (needs its token): never anonymous.
    request(kg.addr, "GET", "/api/v1//x", &[], b"").assert_denied(401, "missing_credentials");
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
    assert_eq!(
        r.json()["target"],
        "/wid%67et/x",
        "the original bytes are forwarded"
    );
    assert_eq!(up.hits(), before + 1);
}

#[test]
fn path_params_are_compared_decoded_and_forwarded_raw() {
    let (_up, kg) = full("production");
    let tok = user_token("user 1");
    let r = kg.get(
        "/v1/users/user%201/feeds/f%2Dx?x=%2F&&y",
        &[
            ("Authorization", "Bearer pk_test_1"),
            ("X-Knock-User-Token", &tok),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["target"],
        "/v1/users/user%201/feeds/f%2Dx?x=%2F&&y"
    );
    assert_eq!(
        r.upstream_header("x-auth-user-id").as_deref(),
        Some("user 1")
    );
    // A trailing slash is another path: the feed route does not match it.
    let r = kg.get(
        "/v1/users/user%201/feeds/f/",
        &[
            ("Authorization", "Bearer pk_test_1"),
            ("X-Knock-User-Token", &tok),
        ],
    );
    r.assert_denied(403, "no_route");
}
