//! Table-driven, in-process tests of every branch of `decide` that allows or denies, on a
//! config loaded with `ruleset::load_str` (no binary, no peers).

use super::*;
use crate::ruleset::Ruleset;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn rules(mode: &str, extra: &str) -> Ruleset {
    let yaml = format!(
        r#"version: 1
mode: {mode}
listen: "127.0.0.1:1"
admin_listen: "127.0.0.1:2"
upstream: {{ url: "http://127.0.0.1:3" }}
{extra}
authenticators:
  pk:
    type: public_key
    from: {{ header: authorization, scheme: Bearer }}
    keys: [{{ name: web, value: pk_1 }}]
    user_id_from: {{ path_param: user_id }}
  user:
    type: jwt
    from: {{ header: x-user-token }}
    algorithms: [RS256]
    keys: [{{ pem_file: "{rsa}" }}]
  key:
    type: api_key
    from: {{ header: x-api-key }}
    keys: [{{ name: ingest, value: key_1 }}]
routes:
  - {{ name: open, path: /open, auth: anonymous }}
  - name: feed
    path: "/v1/users/{{user_id}}/feeds"
    methods: [GET]
    auth: [[pk, user]]
    bind: {{ user_id: "{{user_id}}" }}
  - {{ name: items, path: "/items/{{id}}", methods: [GET, POST], auth: [key] }}
  - {{ name: watch, path: "/watch", methods: [GET], auth: [key], enforce: observe }}
  - {{ name: sio, path: "/socket.io/{{*rest}}", auth: [user], socketio: true }}
"#,
        rsa = fixture("rsa.pub")
    );
    crate::ruleset::load_str(&yaml, "test.yaml").unwrap().rules
}

fn token(sub: &str) -> String {
    let pem = std::fs::read_to_string(fixture("rsa.key")).unwrap();
    let (k, alg) = crate::token::signing_key(&pem).unwrap();
    let now = crate::token::now();
    let claims = serde_json::json!({"sub": sub, "iat": now, "exp": now + 600});
    crate::token::sign(&k, alg, None, claims.as_object().unwrap()).unwrap()
}

const WS: [(&str, &str); 4] = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

fn run(rules: &Ruleset, method: &str, target: &str, headers: &[(&str, &str)]) -> Decision {
    let mut req = RequestHeader::build(method, target.as_bytes(), None).unwrap();
    req.append_header("host", "app.test").unwrap();
    for (k, v) in headers {
        req.append_header(k.to_string(), *v).unwrap();
    }
    let canonical = match Canonical::proxied(&req) {
        Ok(c) => c,
        Err(r) => return deny(None, r),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(decide(
        rules,
        &canonical,
        None,
        &Revocations::default(),
        &mut (),
    ))
}

/// A compact view of an outcome: `forward <route> <user|-> <how>`, `answer <route>`, `deny
/// <route|-> <reason>`.
fn summary(rules: &Ruleset, o: &Decision) -> String {
    let name =
        |r: &Option<usize>| r.map_or("-".into(), |r| rules.routes.routes[r].name.to_string());
    match o {
        Decision::Forward {
            route,
            identity,
            how,
        } => {
            let user = identity
                .as_ref()
                .and_then(|i| i.user_id.clone())
                .unwrap_or("-".into());
            format!("forward {} {user} {how:?}", name(route))
        }
        Decision::Answer { route, .. } => format!("answer {}", name(&Some(*route))),
        Decision::Deny { route, reason, .. } => format!("deny {} {reason}", name(route)),
    }
}

use pingora::http::RequestHeader;

#[test]
fn every_branch_of_decide() {
    let prod = rules("production", "");
    let dev = rules("development", "");
    let cors = rules(
        "production",
        r#"cors: { allowed_origins: ["https://app.test"], allowed_headers: [authorization] }"#,
    );
    let fwd = rules(
        "production",
        "cors_preflight: forward\nunmatched: anonymous",
    );
    let u1 = token("u1");
    let t = |v: &str| v.to_string();
    let ws_v4 = [WS.as_slice(), &[("x-user-token", u1.as_str())]].concat();
    type Row<'a> = (
        &'a Ruleset,
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        String,
    );
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        // Path hygiene and the raw target.
        (&prod, "GET", "/a/../open", vec![], t("deny - malformed_path")),
        (&prod, "GET", "open", vec![], t("deny - malformed_path")),
        // Route lookup.
        (&prod, "GET", "/open", vec![], t("forward open - Plain")),
        (&prod, "GET", "/OPEN/", vec![], t("forward open - Plain")),
        (&prod, "GET", "/nowhere", vec![], t("deny - no_route")),
        (&fwd, "GET", "/nowhere", vec![], t("forward - - Plain")),
        (&prod, "DELETE", "/items/7", vec![("x-api-key", "key_1")], t("deny items method_not_allowed")),
        // Method overrides, every place: the route must allow the method named.
        (&prod, "POST", "/items/7?_method=DELETE", vec![("x-api-key", "key_1")], t("deny items method_not_allowed")),
        (&prod, "POST", "/items/7", vec![("x-api-key", "key_1"), ("X_HTTP_Method_Override", "DELETE")], t("deny items method_not_allowed")),
        (&prod, "POST", "/items/7?_method=GET", vec![("x-api-key", "key_1")], t("forward items - Plain")),
        (&prod, "POST", "/items/7?_method=GET", vec![("x-api-key", "key_1"), ("x-http-method", "PUT")], t("deny - malformed_request")),
        // Credentials.
        (&prod, "GET", "/items/7", vec![], t("deny items missing_credentials")),
        (&prod, "GET", "/items/7", vec![("x-api-key", "nope")], t("deny items invalid_api_key")),
        (&prod, "GET", "/items/7", vec![("x-api-key", "key_1")], t("forward items - Plain")),
        // All-of with bind; development mode's public-key shortcut.
        (&prod, "GET", "/v1/users/u1/feeds", vec![("authorization", "Bearer pk_1"), ("x-user-token", &u1)], t("forward feed u1 Plain")),
        (&prod, "GET", "/v1/users/u2/feeds", vec![("authorization", "Bearer pk_1"), ("x-user-token", &u1)], t("deny feed identity_mismatch")),
        (&prod, "GET", "/v1/users/u1/feeds", vec![("authorization", "Bearer pk_1")], t("deny feed missing_credentials")),
        (&dev, "GET", "/v1/users/u1/feeds", vec![("authorization", "Bearer pk_1")], t("forward feed u1 Plain")),
        (&dev, "GET", "/v1/users/u2/feeds", vec![("authorization", "Bearer pk_1"), ("x-user-token", &u1)], t("deny feed identity_mismatch")),
        // Observe: credential failures are forwarded (the proxy decides, via `observed`).
        (&prod, "GET", "/watch", vec![], t("deny watch missing_credentials")),
        // CORS preflights: answered with a `cors` block, forwarded stripped, or authenticated.
        (&cors, "OPTIONS", "/items/7", vec![("origin", "https://app.test"), ("access-control-request-method", "POST")], t("answer items")),
        (&cors, "OPTIONS", "/items/7", vec![("origin", "https://evil.test"), ("access-control-request-method", "POST")], t("deny items cors_not_allowed")),
        (&cors, "OPTIONS", "/items/7", vec![("origin", "https://app.test"), ("access-control-request-method", "DELETE")], t("deny items cors_not_allowed")),
        (&cors, "OPTIONS", "/nowhere", vec![("origin", "https://app.test"), ("access-control-request-method", "GET")], t("deny - no_route")),
        (&fwd, "OPTIONS", "/items/7", vec![("origin", "https://x.test"), ("access-control-request-method", "GET")], t("forward items - Preflight")),
        (&fwd, "OPTIONS", "/items/7", vec![("origin", "https://x.test"), ("access-control-request-method", "GET"), ("content-length", "3")], t("deny items method_not_allowed")),
        (&prod, "OPTIONS", "/items/7", vec![("origin", "https://x.test"), ("access-control-request-method", "GET")], t("deny items method_not_allowed")),
        // Socket.IO: only an Engine.IO v4 websocket; deferral only at the endpoint itself.
        (&prod, "GET", "/socket.io/?EIO=4&transport=websocket", WS.to_vec(), t("forward sio - Socketio(InStream)")),
        (&prod, "GET", "/socket.io/?EIO=4&transport=websocket", ws_v4.clone(), t("forward sio u1 Socketio(ByUpgrade)")),
        (&prod, "GET", "/socket.io/admin/purge?EIO=4&transport=websocket", WS.to_vec(), t("deny sio missing_credentials")),
        (&prod, "GET", "/socket.io/?EIO=3&transport=websocket", WS.to_vec(), t("deny sio websocket_required")),
        (&prod, "GET", "/socket.io/?transport=websocket", WS.to_vec(), t("deny sio websocket_required")),
        (&prod, "GET", "/socket.io/?EIO=4&EIO=4&transport=websocket", WS.to_vec(), t("deny sio websocket_required")),
        (&prod, "GET", "/socket.io/?EIO=4&transport=polling", vec![("x-user-token", &u1)], t("deny sio websocket_required")),
        (&prod, "GET", "/socket.io/", vec![("x-user-token", &u1)], t("deny sio websocket_required")),
        (&prod, "GET", "/socket.io/?EIO=4&transport=websocket", vec![("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-version", "8"), ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="), ("x-user-token", &u1)], t("deny sio websocket_required")),
    ];
    let mut failures = Vec::new();
    for (rules, method, target, headers, want) in &table {
        let got = summary(rules, &run(rules, method, target, headers));
        if &got != want {
            failures.push(format!(
                "{method} {target} {headers:?}: got `{got}`, want `{want}`"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn observe_forwards_only_credential_and_authorization_failures() {
    let prod = rules("production", "");
    let watch = prod
        .routes
        .routes
        .iter()
        .position(|r| &*r.name == "watch")
        .unwrap();
    let items = prod
        .routes
        .routes
        .iter()
        .position(|r| &*r.name == "items")
        .unwrap();
    assert!(observed(&prod, watch, Reason::MissingCredentials));
    assert!(observed(&prod, watch, Reason::InvalidApiKey));
    assert!(observed(&prod, watch, Reason::IdentityMismatch));
    assert!(!observed(&prod, watch, Reason::MethodNotAllowed));
    assert!(!observed(&prod, watch, Reason::MalformedPath));
    assert!(
        !observed(&prod, items, Reason::MissingCredentials),
        "an enforcing route"
    );
}
