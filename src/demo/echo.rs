//! A small HTTP/1.1 echo server standing in for the backend (`keygate demo`, integration tests).
//! It parses requests itself (httparse) rather than through an HTTP library, because its job is
//! to report the exact bytes that arrived: header names in their case and order, which hyper
//! and its kin normalise away.
//! It answers every request with JSON describing what arrived: method, target, every header in
//! order, and the body's length and SHA-256. It counts the requests it receives and keeps a
//! record of each (method, target, headers) for tests that check what reached the backend.
//!
//! The integration tests include this very file (`tests/it/common/mod.rs`), so it names library
//! items as `keygate::...` (the library is `extern crate self as keygate`), which resolves in
//! both crates, and stays out of the library's public API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A running echo server.
#[derive(Clone)]
#[allow(
    dead_code,
    reason = "the counters are read by the integration tests, which include this file"
)]
pub(crate) struct Echo {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Requests received so far.
    pub(crate) hits: Arc<AtomicU64>,
    /// `{"method", "url", "headers": [[name, value], ...]}` of each request received.
    pub(crate) received: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

#[allow(
    dead_code,
    reason = "used by the integration tests, which include this file"
)]
impl Echo {
    /// Requests received so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Takes the records of the requests received since the last call.
    pub(crate) fn take_received(&self) -> Vec<serde_json::Value> {
        std::mem::take(&mut *self.received.lock().expect("not poisoned"))
    }
}

/// Binds `addr` (e.g. `127.0.0.1:0`) and serves on a background thread with its own runtime.
pub(crate) fn spawn(addr: &str) -> std::io::Result<Echo> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let hits = Arc::new(AtomicU64::new(0));
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let echo = Echo {
        addr,
        hits: hits.clone(),
        received: received.clone(),
    };
    std::thread::Builder::new()
        .name("echo-upstream".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        continue;
                    };
                    let (hits, received) = (hits.clone(), received.clone());
                    tokio::spawn(async move {
                        let _ = serve_conn(sock, hits, received).await;
                    });
                }
            });
        })?;
    Ok(echo)
}

type Records = Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

async fn serve_conn(
    sock: TcpStream,
    hits: Arc<AtomicU64>,
    received: Records,
) -> std::io::Result<()> {
    let mut rd = BufReader::new(sock);
    loop {
        let mut head = Vec::with_capacity(1024);
        loop {
            let n = rd.read_until(b'\n', &mut head).await?;
            if n == 0 {
                return Ok(());
            }
            if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
                break;
            }
            if head.len() > 1 << 20 {
                return Ok(());
            }
        }
        if head == b"\r\n" {
            continue;
        }
        let mut hbuf = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut hbuf);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            return Ok(());
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        if let Ok(mut r) = received.lock() {
            r.push(serde_json::json!({
                "backend": "echo",
                "method": req.method.unwrap_or(""),
                "url": req.path.unwrap_or(""),
                "headers": headers,
            }));
        }
        if find("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
            let key = find("sec-websocket-key").unwrap_or_default();
            let described = serde_json::json!({
                "method": req.method.unwrap_or(""),
                "target": req.path.unwrap_or(""),
                "headers": headers,
            });
            return websocket_echo(rd, &key, described.to_string()).await;
        }
        let mut body = Vec::new();
        if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                let mut line = String::new();
                rd.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                if size == 0 {
                    let mut end = String::new();
                    while rd.read_line(&mut end).await? > 2 {
                        end.clear();
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                rd.read_exact(&mut body[start..]).await?;
                let mut crlf = [0u8; 2];
                rd.read_exact(&mut crlf).await?;
            }
        } else if let Some(len) =
            find("content-length").and_then(|v| v.trim().parse::<usize>().ok())
        {
            body.resize(len, 0);
            rd.read_exact(&mut body).await?;
        }
        let close = find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        // `x-echo-delay-ms: N` answers N ms late (slow-upstream tests).
        if let Some(ms) = find("x-echo-delay-ms").and_then(|v| v.parse::<u64>().ok()) {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        // `x-echo-response-bytes: N` asks for an N-byte body instead (streaming tests).
        if let Some(n) = find("x-echo-response-bytes").and_then(|v| v.parse::<usize>().ok()) {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {n}\r\n\r\n");
            rd.get_mut().write_all(head.as_bytes()).await?;
            let pattern: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
            let mut left = n;
            while left > 0 {
                let k = left.min(pattern.len());
                rd.get_mut().write_all(&pattern[..k]).await?;
                left -= k;
            }
            continue;
        }
        let out = serde_json::json!({
            "method": req.method.unwrap_or(""),
            "target": req.path.unwrap_or(""),
            "headers": headers,
            "body_len": body.len(),
            "body_sha256": hex::encode(keygate::secret::sha256(&body)),
        })
        .to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{}",
            out.len(),
            if close { "connection: close\r\n" } else { "" },
            out
        );
        rd.get_mut().write_all(resp.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}

/// After the 101: one text frame describing the upgrade request, then every client frame
/// echoed back (unmasked, RFC 6455 §5.1) until a close frame, which is answered in kind.
async fn websocket_echo(
    mut rd: BufReader<TcpStream>,
    key: &str,
    described: String,
) -> std::io::Result<()> {
    use keygate::websocket::{accept_key, apply_mask, encode, opcode, parse_header};
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        accept_key(key)
    );
    rd.get_mut().write_all(head.as_bytes()).await?;
    rd.get_mut()
        .write_all(&encode(opcode::TEXT, described.as_bytes(), None))
        .await?;
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 16384];
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(h) = parse_header(&buf) {
            let total = h.header_len + h.len as usize;
            if buf.len() < total {
                break;
            }
            let mut payload = buf[h.header_len..total].to_vec();
            if let Some(m) = h.mask {
                apply_mask(&mut payload, m, 0);
            }
            buf.drain(..total);
            let op = if h.opcode == opcode::CONTINUATION {
                opcode::TEXT
            } else {
                h.opcode
            };
            rd.get_mut().write_all(&encode(op, &payload, None)).await?;
            if h.opcode == opcode::CLOSE {
                return Ok(());
            }
        }
    }
}
