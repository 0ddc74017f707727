//! The demo's self-check: every scenario sent once through the running proxy, its answer
//! summarized the way [`Example::expect`] is written, and a pass/fail table for the terminal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Example;

/// One scenario's result.
pub struct Checked<'a> {
    /// The scenario.
    pub example: &'a Example,
    /// What it got, in [`Example::expect`]'s form (`200 user-1`, `401 token_expired`), or why
    /// it got nothing (`no answer: ...`).
    pub got: String,
}

impl Checked<'_> {
    /// Whether it got what it expects.
    pub fn passed(&self) -> bool {
        self.got == self.example.expect
    }
}

/// Waits (up to 10 s) for the proxy on `listen` to accept, then sends every scenario.
pub fn run<'a>(listen: &str, examples: &'a [Example]) -> Vec<Checked<'a>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    examples
        .iter()
        .map(|example| Checked {
            example,
            got: send(listen, example).unwrap_or_else(|e| format!("no answer: {e}")),
        })
        .collect()
}

/// The table: one line per scenario, then the count.
pub fn table(outcomes: &[Checked<'_>]) -> String {
    let mut out = String::from("self-check: every scenario below, sent once through the proxy\n");
    for o in outcomes {
        let mark = if o.passed() { "ok  " } else { "FAIL" };
        let got = if o.passed() {
            String::new()
        } else {
            format!(" (got {})", o.got)
        };
        out += &format!(
            "  {mark}  {:<24} {}{got}\n",
            o.example.expect, o.example.what
        );
    }
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    out += &format!("{passed}/{} passed\n", outcomes.len());
    out
}

/// Sends one scenario on its own connection; its answer summarized.
fn send(listen: &str, e: &Example) -> Result<String, String> {
    let mut s = TcpStream::connect(listen).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n",
        e.method, e.target
    );
    for (k, v) in &e.headers {
        req += &format!("{k}: {v}\r\n");
    }
    let body = e.body.unwrap_or("");
    if e.body.is_some() {
        req += &format!("Content-Length: {}\r\n", body.len());
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    summarize(&raw)
}

/// `status` then the denial reason, else the user id the echo upstream received, else `-`.
fn summarize(raw: &[u8]) -> Result<String, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err("not an HTTP response".into()),
    };
    let status = resp.code.unwrap_or(0);
    let body: serde_json::Value = serde_json::from_slice(&raw[head..]).unwrap_or_default();
    let user = body["headers"].as_array().and_then(|hs| {
        hs.iter()
            .find(|h| {
                h[0].as_str()
                    .is_some_and(|k| k.eq_ignore_ascii_case("x-auth-user-id"))
            })
            .and_then(|h| h[1].as_str())
    });
    let detail = body["reason"].as_str().or(user).unwrap_or("-");
    Ok(format!("{status} {detail}"))
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn answers_are_summarized_like_expectations() {
        let denied = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 31\r\n\r\n{\"reason\":\"missing_credentials\"}";
        assert_eq!(summarize(denied).unwrap(), "401 missing_credentials");
        let echoed = b"HTTP/1.1 200 OK\r\n\r\n{\"headers\":[[\"X-Auth-User-Id\",\"user-1\"]]}";
        assert_eq!(summarize(echoed).unwrap(), "200 user-1");
        assert_eq!(
            summarize(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(),
            "204 -"
        );
        assert!(summarize(b"garbage").is_err());
    }
}
