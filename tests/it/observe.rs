//! `enforce: observe`: keygate authenticates as usual, records the decision (metrics
//! `outcome="observed"` with the reason, access log) and forwards anyway; identity headers are
//! set only when the request would have been allowed, and client-sent ones are always stripped.

use crate::common::attack::*;
use crate::common::*;

#[test]
fn an_observed_route_forwards_denials_without_identity_and_counts_them() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let body = attack_config().replace(
        "  - { name: admin, path: \"/admin/{*rest}\", methods: [GET], auth: [doka_customer] }",
        "  - { name: admin, path: \"/admin/{*rest}\", methods: [GET], enforce: observe, auth: [doka_customer] }",
    );
    assert!(body.contains("enforce: observe"));
    let kg = Keygate::builder().config(&body).upstream(up.addr).start();
    // Would be denied: forwarded anyway, without identity, spoofs stripped.
    let r = kg
        .get("/admin/x", &[("Authorization", "Bearer not.a.token"), ("X-Auth-User-Id", "victim")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id"), None);
    assert_eq!(r.upstream_header("x-auth-method"), None);
    let r = kg.get("/admin/x", &[]);
    assert_eq!(r.status, 200);
    // Would be allowed: forwarded with identity.
    let tok = format!("Bearer {}", customer_token("alice"));
    let r = kg.get("/admin/x", &[("Authorization", &tok)]);
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("alice"));
    // The request's shape is still enforced: another method is 405, a bad path 400.
    kg.get("/admin/../x", &[]).assert_denied(400, "malformed_path");
    request(kg.addr, "DELETE", "/admin/x", &[], b"").assert_denied(405, "method_not_allowed");
    // Other routes enforce as usual.
    kg.get("/api/v1/x", &[]).assert_denied(401, "missing_credentials");
    kg.metrics_with(&[
        r#"keygate_requests_total{outcome="observed",reason="malformed_credentials",route="admin"} 1"#,
        r#"keygate_requests_total{outcome="observed",reason="missing_credentials",route="admin"} 1"#,
        r#"keygate_requests_total{outcome="allowed",reason="none",route="admin"} 1"#,
    ]);
    assert!(kg.logs().contains(r#""outcome":"observed""#), "{}", kg.logs());
}
