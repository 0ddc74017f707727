//! Failed-authentication throttling: more than `max_failures` credential failures from one
//! client address within the window block it (429 `too_many_failures`, `Retry-After`), even for
//! a valid credential; other addresses are unaffected; the block ends after `block_seconds`;
//! a flood of distinct addresses keeps memory bounded.

use crate::common::attack::*;
use crate::common::*;
use std::time::{Duration, Instant};

fn throttled_keygate(up: std::net::SocketAddr) -> Keygate {
    Keygate::builder().config(format!(
            "trusted_proxies: [127.0.0.0/8]\nthrottle: {{ max_failures: 20, window_seconds: 60, block_seconds: 2 }}\n{}",
            attack_config()
        )).upstream(up).start()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn twenty_one_bad_tokens_block_the_address_until_block_seconds_pass() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = throttled_keygate(up.addr);
    let good = format!("Bearer {}", customer_token("alice"));
    let mut c = Conn::open(kg.addr);
    let from = |ip: &'static str, auth: &str| {
        vec![("X-Forwarded-For", ip.to_string()), ("Authorization", auth.to_string())]
    };
    let send = |c: &mut Conn, h: &Vec<(&str, String)>| {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.request("GET", "/api/v1/me", &h, b"")
    };
    // Missing credentials are not failures: a browser before login is not blocked.
    for _ in 0..30 {
        let r = c.request("GET", "/api/v1/me", &[("X-Forwarded-For", "198.51.100.1")], b"");
        r.assert_denied(401, "missing_credentials");
    }
    for _ in 0..21 {
        send(&mut c, &from("198.51.100.1", "Bearer not.a.token"))
            .assert_denied(401, "malformed_credentials");
    }
    let blocked_at = Instant::now();
    let r = send(&mut c, &from("198.51.100.1", &good));
    r.assert_denied(429, "too_many_failures");
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Decided before the credential is looked at: even a garbage one gets 429, not 401.
    send(&mut c, &from("198.51.100.1", "Bearer garbage")).assert_denied(429, "too_many_failures");
    // Another address is unaffected.
    assert_eq!(send(&mut c, &from("198.51.100.2", &good)).status, 200);
    kg.metrics_with(&[
        r#"keygate_throttled_requests_total{route="customer_api"} 2"#,
        "keygate_throttle_blocked_addresses 1",
    ]);
    // After block_seconds the address is served again.
    std::thread::sleep(
        Duration::from_secs(2).saturating_sub(blocked_at.elapsed()) + Duration::from_millis(100),
    );
    assert_eq!(send(&mut c, &from("198.51.100.1", &good)).status, 200);
}

#[test]
fn a_flood_of_distinct_addresses_keeps_memory_bounded() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = throttled_keygate(up.addr);
    let pid = kg.child.id();
    let warm = |n: u32, base: u32| {
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let addr = kg.addr;
                std::thread::spawn(move || {
                    let mut c = Conn::open(addr);
                    for i in (t..n).step_by(4) {
                        let ip = std::net::Ipv4Addr::from(base + i).to_string();
                        let h = [
                            ("X-Forwarded-For", ip.as_str()),
                            ("Authorization", "Bearer not.a.token"),
                        ];
                        assert_eq!(c.request("GET", "/api/v1/me", &h, b"").status, 401);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    };
    // 100k addresses fill the table to its bound; 100k more must not grow memory further.
    warm(100_000, 0x0a00_0000);
    let full = rss_kib(pid);
    warm(100_000, 0x0b00_0000);
    let after = rss_kib(pid);
    eprintln!("RSS {full} -> {after} KiB for 100k more distinct addresses");
    let grown_mib = after.saturating_sub(full) / 1024;
    assert!(
        grown_mib < 8,
        "RSS grew {grown_mib} MiB for 100k more addresses ({full} -> {after} KiB)"
    );
    assert!(full / 1024 < 200, "RSS {full} KiB with a full table");
}
