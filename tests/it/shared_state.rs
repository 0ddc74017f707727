//! Many replicas, one policy (`shared_state`): three real keygate processes against one real
//! redis-server. A block set by one replica's failures holds on all three within a second; a
//! route quota lets exactly its requests through across the replicas, then 429 with
//! `Retry-After` and the `RateLimit` fields, nothing forwarded; `keygate revoke` reaches every
//! replica within a second (cached tokens included), lists and deletes; Redis killed under load
//! costs no 5xx with `on_unavailable: local` and sharing is back within 5 s of its restart;
//! `deny` answers 503; a Redis password never appears in any output.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::redis_server::RedisServer;
use crate::common::*;

const API_KEY: &str = "ek_live_5a7e1c";

/// A config body on `redis_url` with `on_unavailable`, with or without `throttle`.
fn body(redis_url: &str, on_unavailable: &str, throttle: bool) -> String {
    let throttle = if throttle {
        "throttle: { max_failures: 6, window_seconds: 60, block_seconds: 60 }\n"
    } else {
        ""
    };
    format!(
        r#"trusted_proxies: [127.0.0.0/8]
{throttle}shared_state: {{ redis_url: "{redis_url}", key_prefix: "kg-test:", timeout_ms: 250, on_unavailable: {on_unavailable} }}
authenticators:
  user_jwt:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{{ pem_file: "{rsa}" }}]
    require: [sub, exp]
  events_key:
    type: api_key
    from: {{ header: x-api-key }}
    keys: [{{ name: ingest, value: "{API_KEY}" }}]
routes:
  - {{ name: me, path: /me, auth: [user_jwt] }}
  - {{ name: events, path: "/v1/events/{{*rest}}", auth: [events_key], quota: {{ requests: 10, per_seconds: 10 }} }}
  - {{ name: site, path: "/{{*rest}}", methods: [GET], auth: anonymous }}
"#,
        rsa = fixture("rsa.pub"),
    )
}

/// keygate on `body`, once it is subscribed to Redis.
fn replica(up: std::net::SocketAddr, body: &str, env: &[(&str, &str)]) -> Keygate {
    let mut b = Keygate::builder().config(body).upstream(up);
    for (k, v) in env {
        b = b.env(k, v);
    }
    let kg = b.start();
    eventually("keygate to subscribe to Redis", Duration::from_secs(10), || {
        kg.logs().contains("connected to Redis").then_some(())
    });
    kg
}

fn replicas(up: std::net::SocketAddr, body: &str) -> Vec<Keygate> {
    (0..3).map(|_| replica(up, body, &[])).collect()
}

fn me(kg: &Keygate, auth: &str, from: &str) -> Resp {
    kg.get("/me", &[("Authorization", auth), ("X-Forwarded-For", from)])
}

fn revoke(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(["revoke", "--config"]).arg(config).args(args);
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

/// Waits until every replica gives `status` for `req`, within `within` of `since`; panics
/// naming the replica otherwise.
#[track_caller]
fn all_within(
    kgs: &[Keygate],
    since: Instant,
    within: Duration,
    status: u16,
    req: impl Fn(&Keygate) -> Resp,
) {
    for (i, kg) in kgs.iter().enumerate() {
        let left = within.saturating_sub(since.elapsed());
        eventually(&format!("replica {i} to answer {status}"), left, || {
            (req(kg).status == status).then_some(())
        });
    }
}

#[test]
fn the_seventh_bad_token_blocks_the_address_on_every_replica_within_a_second() {
    let redis = RedisServer::start();
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kgs = replicas(up.addr, &body(&redis.url(), "local", true));
    let good = format!("Bearer {}", user_token("alice"));
    let attacker = "198.51.100.9";
    for i in 0..6 {
        me(&kgs[i % 3], "Bearer not.a.token", attacker).assert_denied(401, "malformed_credentials");
    }
    for kg in &kgs {
        assert_eq!(me(kg, &good, attacker).status, 200, "six failures do not block");
    }
    me(&kgs[0], "Bearer not.a.token", attacker).assert_denied(401, "malformed_credentials");
    let blocked = Instant::now();
    all_within(&kgs, blocked, Duration::from_secs(1), 429, |kg| me(kg, &good, attacker));
    for kg in &kgs {
        let r = me(kg, &good, attacker);
        r.assert_denied(429, "too_many_failures");
        let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((55..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(me(kg, &good, "198.51.100.10").status, 200, "other addresses are served");
    }
    assert_eq!(redis.keys("kg-test:throttle:block:*"), ["kg-test:throttle:block:198.51.100.9"]);
    // Replicas that counted none of the failures still report the block.
    kgs[2].metrics_with(&["keygate_throttle_blocked_addresses 1"]);
}

#[test]
fn a_quota_lets_exactly_its_requests_through_across_the_replicas_then_429() {
    let redis = RedisServer::start();
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kgs = replicas(up.addr, &body(&redis.url(), "local", false));
    let send = |i: usize| kgs[i % 3].post("/v1/events/e1", &[("x-api-key", API_KEY)], b"{}");
    for i in 0..10 {
        let r = send(i);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("ratelimit-policy"), Some(r#""events";q=10;w=10"#));
        let rl = r.header("ratelimit").expect("RateLimit on an allowed answer");
        assert!(rl.starts_with(&format!(r#""events";r={};t="#, 9 - i)), "request {i}: {rl}");
    }
    for i in 10..15 {
        let r = send(i);
        r.assert_denied(429, "quota_exceeded");
        let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=10).contains(&retry), "Retry-After {retry}");
        assert_eq!(r.header("ratelimit"), Some(format!(r#""events";r=0;t={retry}"#).as_str()));
        assert_eq!(r.header("ratelimit-policy"), Some(r#""events";q=10;w=10"#));
    }
    assert_eq!(up.hits(), 10, "nothing over the quota was forwarded");
    let exceeded: f64 = kgs
        .iter()
        .map(|kg| kg.metric(r#"keygate_quota_exceeded_total{route="events"}"#).unwrap_or(0.0))
        .sum();
    assert_eq!(exceeded, 5.0);
    assert_eq!(redis.keys("kg-test:quota:*").len(), 1, "one counter, shared");
    // Routes without a quota carry no RateLimit fields and touch no counter.
    let r = kgs[0].get("/", &[]);
    assert_eq!((r.status, r.header("ratelimit")), (200, None));
    assert_eq!(redis.keys("kg-test:quota:*").len(), 1);
}

#[test]
fn keygate_revoke_reaches_every_replica_within_a_second_and_lists_and_deletes() {
    let redis = RedisServer::start();
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kgs = replicas(up.addr, &body(&redis.url(), "local", false));
    let (user1, user2) =
        (format!("Bearer {}", user_token("user-1")), format!("Bearer {}", user_token("user-2")));
    for kg in &kgs {
        assert_eq!(me(kg, &user1, "192.0.2.1").status, 200); // now in each token cache
    }
    let config = kgs[0].config_path();
    let out = revoke(&config, &["--sub", "user-1"], &[]);
    let revoked = Instant::now();
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let id =
        line.strip_prefix("revoked ").and_then(|l| l.split(' ').next()).expect(&line).to_string();
    all_within(&kgs, revoked, Duration::from_secs(1), 401, |kg| me(kg, &user1, "192.0.2.1"));
    for kg in &kgs {
        me(kg, &user1, "192.0.2.1").assert_denied(401, "credential_revoked");
        assert_eq!(me(kg, &user2, "192.0.2.1").status, 200, "other users are served");
    }
    // A credential entry, with a TTL.
    let out = revoke(&config, &["--credential", "events_key/ingest", "--ttl", "1h"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let events = |kg: &Keygate| kg.post("/v1/events/e", &[("x-api-key", API_KEY)], b"");
    all_within(&kgs, Instant::now(), Duration::from_secs(1), 401, events);
    let listed = revoke(&config, &["--list"], &[]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains(&format!(r#"{id} {{"sub":"user-1"}}"#)), "{listed}");
    assert!(listed.contains(r#""credential":"events_key/ingest","expires_at":"#), "{listed}");
    // --delete: served again everywhere within a second; a second delete finds nothing.
    let out = revoke(&config, &["--delete", &id], &[]);
    assert!(out.status.success(), "{}", text(&out));
    all_within(&kgs, Instant::now(), Duration::from_secs(1), 200, |kg| me(kg, &user1, "192.0.2.1"));
    let again = revoke(&config, &["--delete", &id], &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert_eq!(
        String::from_utf8_lossy(&revoke(&config, &["--list"], &[]).stdout).lines().count(),
        1
    );
    // Bad arguments: exit 2, nothing stored.
    for args in [
        &["--issued-before", "2026-01-01T00:00:00Z"][..],
        &["--sub", "u", "--issued-before", "soon"],
    ] {
        assert_eq!(revoke(&config, args, &[]).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn keygate_revoke_without_shared_state_exits_2_and_points_to_revocations_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.yaml");
    let yaml =
        Keygate::builder().config("routes: [{ name: site, path: /, auth: anonymous }]\n").text();
    std::fs::write(&config, yaml).unwrap();
    let out = revoke(&config, &["--sub", "user-1"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("revocations.file"), "{}", text(&out));
    assert_eq!(revoke(&config, &["--list"], &[]).status.code(), Some(2));
}

#[test]
fn redis_killed_under_load_costs_no_5xx_and_sharing_is_back_within_5s_of_its_restart() {
    let mut redis = RedisServer::start();
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kgs = replicas(up.addr, &body(&redis.url(), "local", true));
    let good = format!("Bearer {}", user_token("alice"));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = kgs
        .iter()
        .map(|kg| {
            let (addr, stop, good) = (kg.addr, stop.clone(), good.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                let mut c = Conn::open(addr);
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    let me = c.request("GET", "/me", &[("Authorization", &good)], b"");
                    let ev = c.request("POST", "/v1/events/e", &[("x-api-key", API_KEY)], b"");
                    statuses.extend([me.status, ev.status]);
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    redis.kill();
    std::thread::sleep(Duration::from_secs(2));
    redis.restart();
    let restarted = Instant::now();
    // Sharing is back: a revocation added now reaches every replica.
    let config = kgs[0].config_path();
    let user9 = format!("Bearer {}", user_token("user-9"));
    eventually("keygate revoke to reach Redis", Duration::from_secs(5), || {
        revoke(&config, &["--sub", "user-9"], &[]).status.success().then_some(())
    });
    all_within(&kgs, restarted, Duration::from_secs(5), 401, |kg| me(kg, &user9, "192.0.2.9"));
    stop.store(true, Ordering::Relaxed);
    let statuses: Vec<u16> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let errors = statuses.iter().filter(|s| **s >= 500).count();
    assert!(statuses.len() > 30, "{} requests under load", statuses.len());
    assert_eq!(errors, 0, "{errors} 5xx among {} answers", statuses.len());
    assert!(statuses.contains(&200) && statuses.contains(&429), "quota applied throughout");
    for kg in &kgs {
        let connect = kg.metric(r#"keygate_shared_state_errors_total{op="connect"}"#).unwrap();
        assert!(connect >= 1.0, "connect errors {connect}");
        let logs = kg.logs();
        assert!(logs.matches("shared state unavailable").count() <= 1, "logged once a minute");
        // One line per outage, not one per reconnection attempt (a second only if a loaded box
        // delayed a ping past its deadline).
        let outages = logs.matches("Redis unavailable").count();
        assert!((1..=2).contains(&outages), "{outages} outage lines");
    }
}

#[test]
fn deny_answers_503_while_redis_is_down_and_still_refuses_revoked_credentials() {
    let mut redis = RedisServer::start();
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = replica(up.addr, &body(&redis.url(), "deny", false), &[]);
    let throttled = replica(up.addr, &body(&redis.url(), "deny", true), &[]);
    let (user1, user2) =
        (format!("Bearer {}", user_token("user-1")), format!("Bearer {}", user_token("user-2")));
    assert!(revoke(&kg.config_path(), &["--sub", "user-1"], &[]).status.success());
    eventually("the revocation", Duration::from_secs(1), || {
        (me(&kg, &user1, "192.0.2.1").status == 401).then_some(())
    });
    redis.kill();
    eventually("503 with Redis down", Duration::from_secs(5), || {
        (me(&kg, &user2, "192.0.2.1").status == 503).then_some(())
    });
    me(&kg, &user2, "192.0.2.1").assert_denied(503, "shared_state_unavailable");
    me(&kg, &user1, "192.0.2.1").assert_denied(401, "credential_revoked");
    kg.post("/v1/events/e", &[("x-api-key", API_KEY)], b"")
        .assert_denied(503, "shared_state_unavailable");
    assert_eq!(
        kg.get("/", &[]).status,
        200,
        "an anonymous route without a quota needs no shared state"
    );
    // With `throttle`, every request needs the shared blocks.
    eventually("503 on every request with throttle", Duration::from_secs(5), || {
        (throttled.get("/", &[]).status == 503).then_some(())
    });
    throttled.get("/", &[]).assert_denied(503, "shared_state_unavailable");
    let hits = up.hits();
    redis.restart();
    let restarted = Instant::now();
    let both = [kg, throttled];
    all_within(&both[..1], restarted, Duration::from_secs(5), 200, |kg| {
        me(kg, &user2, "192.0.2.1")
    });
    all_within(&both[1..], restarted, Duration::from_secs(5), 200, |kg| kg.get("/", &[]));
    assert_eq!(up.hits(), hits + 2, "nothing was forwarded while refused");
}

#[test]
fn a_redis_password_never_appears_in_any_output() {
    let pw = "Pa55-w0rd-7f3a9c";
    let wrong = "Wr0ng-pa55-11d2e";
    let redis = RedisServer::with_password(pw);
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let url = format!("redis://:${{KG_REDIS_PASSWORD}}@127.0.0.1:{}/0", redis.port);
    let kg = replica(up.addr, &body(&url, "local", true), &[("KG_REDIS_PASSWORD", pw)]);
    let env = [("KG_REDIS_PASSWORD", pw)];
    let mut outputs = vec![];
    for i in 0..12 {
        outputs.push(kg.post("/v1/events/e", &[("x-api-key", API_KEY)], b"").text());
        outputs.push(me(&kg, "Bearer not.a.token", &format!("192.0.2.{i}")).text());
    }
    let check = Command::new(bin())
        .args(["check", "--config"])
        .arg(kg.config_path())
        .envs(env)
        .output()
        .unwrap();
    assert!(check.status.success());
    outputs.push(text(&check));
    outputs.push(text(&revoke(&kg.config_path(), &["--sub", "user-1"], &env)));
    let listed = revoke(&kg.config_path(), &["--list"], &env);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("user-1"), "{}", text(&listed));
    outputs.push(text(&listed));
    outputs.push(kg.admin_get("/metrics").text());
    // The wrong password: refused by Redis, and not shown either.
    let bad = Keygate::builder()
        .config(body(&url, "local", true))
        .upstream(up.addr)
        .env("KG_REDIS_PASSWORD", wrong)
        .start();
    let refused = revoke(&kg.config_path(), &["--list"], &[("KG_REDIS_PASSWORD", wrong)]);
    assert_eq!(refused.status.code(), Some(1));
    outputs.push(text(&refused));
    eventually("the refused connection to be logged", Duration::from_secs(10), || {
        bad.logs().contains("Redis unavailable").then_some(())
    });
    outputs.push(bad.post("/v1/events/e", &[("x-api-key", API_KEY)], b"").text());
    // A URL keygate refuses: the error names the field, not the value.
    let broken = body(&format!("http://:{pw}@127.0.0.1:{}/0", redis.port), "local", true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, Keygate::builder().config(broken).text()).unwrap();
    let refused = Command::new(bin()).args(["check", "--config"]).arg(&path).output().unwrap();
    assert!(!refused.status.success());
    assert!(text(&refused).contains("shared_state.redis_url"), "{}", text(&refused));
    outputs.push(text(&refused));
    drop(redis); // errors after Redis goes away are logged too
    std::thread::sleep(Duration::from_millis(1500));
    outputs.push(kg.logs());
    outputs.push(bad.logs());
    for o in &outputs {
        for secret in [pw, wrong] {
            assert!(!o.contains(secret), "password in output:\n{o}");
        }
    }
    assert!(kg.logs().contains("redis://:***@127.0.0.1"), "the URL is logged redacted");
}
