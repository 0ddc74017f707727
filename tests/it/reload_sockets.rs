//! Open websockets across config reloads: they must not keep old config generations alive
//! (their token caches, their JWK-set fetch loops), and later Socket.IO CONNECTs on an old socket
//! are verified with the keys and rules in force now.

use crate::common::jwks_server::{jwk, JwksServer};
use crate::common::*;
use serde_json::json;
use std::time::Duration;

const SIO: &str = "/api/v1/wss/socket.io";

fn config(srv: &JwksServer, static_kids: &[&str]) -> String {
    let keys: Vec<String> = static_kids
        .iter()
        .map(|k| {
            format!(
                "{{ kid: {k}, pem_file: \"{}\" }}",
                fixture(if *k == "s2" { "rsa_other.pub" } else { "rsa.pub" })
            )
        })
        .collect();
    format!(
        r#"authenticators:
  idp:
    type: jwt
    from: [{{ header: authorization, scheme: Bearer }}, {{ socketio_auth: token, scheme: Bearer }}]
    jwks_url: "{url}"
    audiences: [aud-1]
    algorithms: [RS256]
    jwks: {{ min_refresh_interval_seconds: 1, refresh_seconds: 1 }}
  fixed:
    type: jwt
    from: {{ socketio_auth: token, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{keys}]
routes:
  - {{ name: sio, path: "{SIO}/{{*rest}}", socketio: true, auth: [idp, fixed] }}
"#,
        url = srv.url(),
        keys = keys.join(", ")
    )
}

fn connect(ws: &mut WsClient, nsp: &str, token: &str) -> String {
    let prefix = if nsp == "/" { String::new() } else { format!("{nsp},") };
    ws.send_text(&format!(r#"40{prefix}{{"token":"Bearer {token}"}}"#));
    ws.read_text().unwrap_or_default()
}

fn claims(sub: &str) -> serde_json::Value {
    let t = now();
    json!({"sub": sub, "aud": "aud-1", "iat": t, "exp": t + 600})
}

#[test]
fn open_sockets_do_not_pin_old_configs_and_later_connects_use_the_new_rules() {
    let node = Program::node("socketio_server.js", &[SIO]);
    let srv = JwksServer::start(vec![jwk("rsa.jwk.json", Some("j1"), json!({"alg": "RS256"}))]);
    let kg = Keygate::builder().config(config(&srv, &["s1", "s2"])).upstream(node.addr()).start();
    kg.wait_readyz(200, 10);
    let target = format!("{SIO}/?EIO=4&transport=websocket");
    // A socket opened under each config generation, with a reload after each; the last reload
    // removes static key s1.
    let path = kg.config_path();
    let mut sockets = Vec::new();
    for (i, kids) in [&["s1", "s2"][..], &["s1", "s2"][..], &["s2"][..]].iter().enumerate() {
        let mut ws = ws_connect(kg.addr, &target, &[]).unwrap_or_else(|r| panic!("{}", r.text()));
        assert!(ws.read_text().unwrap().starts_with("0{"));
        let tok = sign("rsa.key", "RS256", Some("j1"), claims(&format!("u{i}")));
        assert!(connect(&mut ws, "/", &tok).starts_with("40{\"sid\""));
        sockets.push(ws);
        let text = kg.config_text(&config(&srv, kids)) + &format!("# reload {i}\n");
        std::fs::write(&path, text).unwrap();
        std::thread::sleep(Duration::from_millis(600));
    }
    assert!(kg.metric(r#"keygate_config_reloads_total{result="ok"}"#).unwrap() >= 3.0);
    // One live provider refreshing every second, not one per generation an open socket holds.
    std::thread::sleep(Duration::from_millis(1500));
    let before = srv.fetches();
    std::thread::sleep(Duration::from_secs(4));
    let fetched = srv.fetches() - before;
    assert!((2..=6).contains(&fetched), "{fetched} JWK-set fetches in 4 s with 3 old sockets open");
    // A later CONNECT on an old socket: the removed key no longer works, the kept one does.
    let old = sign("rsa.key", "RS256", Some("s1"), claims("late"));
    assert_eq!(
        connect(&mut sockets[0], "/tenant", &old),
        r#"44/tenant,{"message":"unauthorized","data":{"reason":"unknown_key"}}"#
    );
    let kept = sign("rsa_other.key", "RS256", Some("s2"), claims("late"));
    assert!(connect(&mut sockets[1], "/tenant", &kept).starts_with("40/tenant,{\"sid\""));
}
