//! Knock's wire format (official client): `Authorization: Bearer <public key>` and
//! `X-Knock-User-Token: <RS256 JWT>`; production needs the user token, development accepts
//! the public key alone.

use crate::common::*;

const FEED: &str = "/v1/users/user-1/feeds/feed-1?page_size=50&status=unread";

fn knock_headers(token: Option<&str>) -> Vec<(&str, &str)> {
    let mut h = vec![
        ("Authorization", "Bearer pk_test_1"),
        ("X-Knock-Client", "Knock/ClientJS 0.10.0"),
        ("Content-Type", "application/json"),
    ];
    if let Some(t) = token {
        h.push(("X-Knock-User-Token", t));
    }
    h
}

#[test]
fn production_requires_a_user_token_matching_the_path() {
    let (up, kg) = full("production");
    let tok = user_token("user-1");
    let r = kg.get(FEED, &knock_headers(Some(&tok)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("user-1"));
    let r = kg.post(
        "/v1/messages/batch/read",
        &knock_headers(Some(&tok)),
        br#"{"message_ids":["m1","m2"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("user-1"));
    assert_eq!(r.json()["body_len"], 27);

    let before = up.hits();
    kg.get(FEED, &knock_headers(None)).assert_denied(401, "missing_credentials");
    kg.post("/v1/messages/batch/read", &knock_headers(None), b"{}")
        .assert_denied(401, "missing_credentials");
    kg.get("/v1/users/user-2/feeds/feed-1", &knock_headers(Some(&tok)))
        .assert_denied(403, "identity_mismatch");
    kg.get(FEED, &knock_headers(Some(&user_token("user-2"))))
        .assert_denied(403, "identity_mismatch");
    kg.get(FEED, &[("X-Knock-User-Token", tok.as_str())]).assert_denied(401, "missing_credentials");
    assert_eq!(up.hits(), before);
}

#[test]
fn development_accepts_the_public_key_alone() {
    let (up, kg) = full("development");
    let r = kg.get(FEED, &knock_headers(None));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("user-1"));
    assert_eq!(r.upstream_header("x-auth-method").as_deref(), Some("public_key"));
    let r = kg.post("/v1/messages/batch/read", &knock_headers(None), b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    // A present credential is still verified.
    let before = up.hits();
    kg.get(FEED, &knock_headers(Some("garbage"))).assert_denied(401, "malformed_credentials");
    kg.get(FEED, &knock_headers(Some(&user_token("user-2"))))
        .assert_denied(403, "identity_mismatch");
    // The public key itself is still required.
    kg.get(FEED, &[]).assert_denied(401, "missing_credentials");
    assert_eq!(up.hits(), before);
    assert!(kg.logs().contains("development mode"), "no start-up warning");
}

#[test]
fn phoenix_style_query_credentials_are_accepted() {
    let (_up, kg) = full("production");
    let tok = user_token("user-1");
    let r = kg.get(
        &format!("/v1/users/user-1/feeds/feed-1?user_token={tok}&api_key=pk_test_1&&vsn=2.0.0"),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("user-1"));
}
