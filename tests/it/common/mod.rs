//! Integration-test harness: the real `keygate` binary on 127.0.0.1 ephemeral ports in front of
//! the real echo upstream, a raw HTTP/1.1 client (so paths are sent byte for byte), a raw
//! websocket client, and tokens signed with the committed fixture keys.
//!
//! | module | what |
//! |---|---|
//! | `process` | keygate: `Keygate::builder().config(..).upstream(..).env(..).start()` |
//! | `http` | `Conn`, `request`, `Resp` |
//! | `ws` | `ws_connect`, `WsClient` (tungstenite-built frames) |
//! | `tokens` | `sign`, `user_token`, `hmac_token`, test secrets |
//! | `configs` | `full_config`, `full` |
//! | `attack`, `programs`, `nginx`, `jwks_server`, `redis_server` | backends and peers |

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::time::{Duration, Instant};

// Formatted as library code (this directory's rustfmt.toml would format it otherwise, and
// `cargo fmt --check` could then never agree with itself).
#[rustfmt::skip]
#[path = "../../../src/demo/echo.rs"]
pub(crate) mod echo;
pub(crate) use echo::Echo;

pub(crate) mod attack;
mod configs;
mod http;
pub(crate) mod jwks_server;
pub(crate) mod nginx;
mod process;
pub(crate) mod programs;
pub(crate) mod pypi;
pub(crate) mod redis_server;
mod tokens;
pub(crate) mod traefik;
mod ws;

pub(crate) use configs::{full, full_config};
pub(crate) use http::{request, Case, Conn, Resp};
pub(crate) use process::Keygate;
pub(crate) use programs::Program;
pub(crate) use tokens::*;
pub(crate) use ws::{ws_connect, WsClient};

/// The path of a file in `tests/fixtures/`.
pub(crate) fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// A port free on 127.0.0.1 right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The keygate binary under test: this build's, or `KEYGATE_BIN` (e.g. a release build).
pub(crate) fn bin() -> String {
    std::env::var("KEYGATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_keygate").to_string())
}

/// Polls `f` every 20 ms until it returns `Some`; panics naming `what` after `within`.
#[track_caller]
pub(crate) fn eventually<T>(what: &str, within: Duration, f: impl FnMut() -> Option<T>) -> T {
    try_eventually(within, f)
        .unwrap_or_else(|| panic!("timed out after {within:?} waiting for {what}"))
}

/// Polls `f` every 20 ms until it returns `Some`; `None` once `within` passed.
pub(crate) fn try_eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads lines from a child's stdout on a thread.
pub(crate) fn spawn_line_reader(
    out: impl Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
