//! The forward-auth listener: keygate as the auth service of a real nginx (`auth_request`,
//! `auth_request_set` copying the identity into the proxied request), and of proxies speaking
//! Traefik ForwardAuth's (`X-Forwarded-Method`/`-Uri`/`-Host`) and Envoy `ext_authz` HTTP
//! service's conventions. Denials keep their status, JSON body and `WWW-Authenticate`.

use crate::common::attack::*;
use crate::common::nginx::Nginx;
use crate::common::*;

fn forward_auth_keygate(up: std::net::SocketAddr) -> (Keygate, std::net::SocketAddr) {
    let port = free_port();
    let kg = Keygate::builder()
        .config(format!("forward_auth: {{ listen: \"127.0.0.1:{port}\" }}\n{}", attack_config()))
        .upstream(up)
        .start();
    (kg, format!("127.0.0.1:{port}").parse().unwrap())
}

#[test]
fn nginx_auth_request_in_front_of_the_backend() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let (_kg, fa) = forward_auth_keygate(up.addr);
    let nginx = Nginx::start(&format!(
        r#"    location / {{
      auth_request /_keygate;
      auth_request_set $kg_user $upstream_http_x_auth_user_id;
      auth_request_set $kg_method $upstream_http_x_auth_method;
      auth_request_set $kg_ws $upstream_http_x_auth_workspace_id;
      proxy_set_header X-Auth-User-Id $kg_user;
      proxy_set_header X-Auth-Method $kg_method;
      proxy_set_header X-Auth-Workspace-Id $kg_ws;
      proxy_pass http://{up};
    }}
    location = /_keygate {{
      internal;
      proxy_pass http://{fa};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}"#,
        up = up.addr
    ));
    let tok = format!("Bearer {}", customer_token("alice"));
    let r = request(
        nginx.addr,
        "GET",
        "/api/v1/me?x=1",
        &[("Authorization", &tok), ("X-Auth-User-Id", "victim")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("alice"));
    assert_eq!(r.upstream_header("x-auth-method").as_deref(), Some("jwt"));
    assert_eq!(r.upstream_header("x-auth-workspace-id").as_deref(), Some("ONAVZK8J"));
    assert_eq!(r.json()["target"], "/api/v1/me?x=1");
    let hits = up.hits();
    // Denied: nginx passes keygate's status and challenge on; the backend never sees it.
    let r =
        request(nginx.addr, "GET", "/api/v1/me", &[("Authorization", "Bearer not.a.token")], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    let r = request(nginx.addr, "GET", "/admin/x", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(up.hits(), hits, "a denied request reached the backend");
    // Anonymous routes pass without identity.
    let r = request(nginx.addr, "GET", "/healthz", &[("X-Auth-User-Id", "victim")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.upstream_header("x-auth-user-id"),
        None,
        "nginx sets nothing for an empty identity"
    );
}

#[test]
fn traefik_and_envoy_conventions() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let (kg, fa) = forward_auth_keygate(up.addr);
    let tok = format!("Bearer {}", customer_token("alice"));
    // Traefik ForwardAuth: the original request in X-Forwarded-Method/-Uri/-Host.
    let traefik = |method: &str, uri: &str, auth: &str| {
        let h = [
            ("X-Forwarded-Method", method),
            ("X-Forwarded-Uri", uri),
            ("X-Forwarded-Host", "app.test"),
            ("X-Forwarded-Proto", "https"),
            ("Authorization", auth),
        ];
        request(fa, "GET", "/", &h, b"")
    };
    let r = traefik("GET", "/api/v1/me", &tok);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-auth-user-id"), Some("alice"));
    assert_eq!(r.header("x-auth-credential"), Some(format!("doka_customer/{DOKA_KID}").as_str()));
    let r = traefik("GET", "/api/v1/me", "Bearer not.a.token");
    r.assert_denied(401, "malformed_credentials");
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    assert_eq!(r.header("x-auth-user-id"), None);
    traefik("DELETE", "/admin/x", &tok).assert_denied(405, "method_not_allowed");
    traefik("GET", "/api/../admin", &tok).assert_denied(400, "malformed_path");
    // Envoy ext_authz HTTP service: the original method and path are the request's own.
    let r = request(fa, "GET", "/api/v1/me", &[("Authorization", &tok)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-auth-user-id"), Some("alice"));
    request(fa, "POST", "/v1/events/x", &[], b"").assert_denied(401, "missing_credentials");
    // A Socket.IO route needs keygate in the stream: refused here, whatever the credential.
    let ws = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Authorization", tok.as_str()),
    ];
    request(fa, "GET", &format!("{SIO}/?EIO=4&transport=websocket"), &ws, b"")
        .assert_denied(403, "no_route");
    assert_eq!(up.hits(), 0, "forward-auth never proxies");
    kg.metrics_with(&[
        r#"keygate_requests_total{outcome="allowed",reason="none",route="customer_api"} 2"#,
    ]);
}
