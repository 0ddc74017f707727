//! Connection buffers allocated on demand (shims/pingora-core, `keygate patch (memory)`): a
//! request head is first read into 64 bytes and grown (to 1 KiB, then doubling); the client's
//! socket is read through one per-thread 64 KiB buffer, the bytes the parser had no room for
//! kept aside; an upgraded connection waits with a 512-byte buffer and reads 64 KiB while data
//! keeps coming. Heads of every size across those boundaries (with and without a body in the
//! same write), heads sent a byte at a time, and websocket messages of every size must arrive
//! intact.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long `head_of(_, path)` is with an empty `x-pad`.
fn bare_len(path: &str) -> usize {
    format!("GET {path} HTTP/1.1\r\nHost: keygate.test\r\nx-pad: \r\n\r\n").len()
}

/// A GET whose head is exactly `len` bytes long (padded with an `x-pad` header).
fn head_of(len: usize, path: &str) -> Vec<u8> {
    assert!(len >= bare_len(path), "{len} < {}", bare_len(path));
    let pad = "p".repeat(len - bare_len(path));
    let head = format!("GET {path} HTTP/1.1\r\nHost: keygate.test\r\nx-pad: {pad}\r\n\r\n");
    assert_eq!(head.len(), len);
    head.into_bytes()
}

#[test]
fn request_heads_of_every_size_arrive_intact() {
    let (_up, kg) = full("production");
    let mut c = Conn::open(kg.addr);
    // Around the first buffer (64), its first growth (1024), the old initial buffer (4096), and
    // beyond, on one keep-alive connection.
    for len in [60, 63, 64, 65, 127, 128, 1023, 1024, 1025, 2048, 4095, 4096, 4097, 9000, 20000] {
        let path = format!("/public/h{len}");
        let r = c.raw(&head_of(len, &path));
        assert_eq!(r.status, 200, "head of {len} bytes: {}", r.text());
        assert_eq!(r.json()["target"], path, "head of {len} bytes");
        let pad = r.upstream_header("x-pad").unwrap_or_default();
        assert_eq!(pad.len(), len - bare_len(&path), "x-pad of the {len}-byte head");
    }

    // Heads of those sizes with their bodies in the same write (the body arrives with the
    // head's last read, or after the head in the socket's leftover bytes), on one connection.
    for (i, len) in [60, 64, 200, 1000, 1030, 3000, 5000].into_iter().enumerate() {
        let body = vec![b'a' + i as u8; 1 + i * 700];
        let path = format!("/public/b{len}");
        let mut req = head_of(len, &path);
        req.truncate(req.len() - 2); // before the empty line
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(&body);
        let r = c.raw(&req);
        assert_eq!(r.status, 200, "head of {len} bytes with a body: {}", r.text());
        let j = r.json();
        assert_eq!(j["target"], path);
        assert_eq!(j["body_len"], body.len(), "head of {len} bytes");
        assert_eq!(j["body_sha256"], keygate::token::hash_hex(&body), "head of {len} bytes");
    }

    // A head trickled in a byte at a time (each read finds one byte), then a request right
    // after on the same connection.
    let mut s = TcpStream::connect(kg.addr).unwrap();
    s.set_nodelay(true).unwrap();
    for b in head_of(300, "/public/trickle") {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let mut c3 = Conn::from_stream(s);
    let r = c3.read_response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/public/trickle");
    let r = c3.raw(&head_of(80, "/public/after"));
    assert_eq!(r.json()["target"], "/public/after");
}

#[test]
fn websocket_messages_of_every_size_arrive_intact_both_ways() {
    let (_up, kg) = full("production");
    let mut ws = ws_connect(kg.addr, "/public/ws", &[]).unwrap_or_else(|r| panic!("{}", r.text()));
    let described = ws.read_text().expect("the echo describes the upgrade first");
    assert!(described.contains("/public/ws"), "{described}");
    // Around the idle read (512) and the busy read (64 KiB), and larger.
    // (A client frame of 126 bytes or more has an 8-byte header, an echoed one 4 bytes.)
    for len in [1, 100, 503, 504, 505, 507, 508, 509, 511, 512, 513, 4096, 65_528, 65_536, 300_000]
    {
        let msg: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        ws.send_text(&msg);
        let got = ws.read_text().unwrap_or_else(|| panic!("closed after a {len}-byte message"));
        assert_eq!(got.len(), len, "message of {len} bytes");
        assert!(got == msg, "message of {len} bytes changed");
    }
    // A burst of small messages in one write, then an idle pause, then more: all echoed in order.
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend_from_slice(&WsClient::frame(1, true, format!("m{i}").as_bytes()));
    }
    ws.write(&burst);
    for i in 0..200 {
        assert_eq!(ws.read_text().as_deref(), Some(format!("m{i}").as_str()));
    }
    std::thread::sleep(Duration::from_millis(300));
    ws.send_text("after the pause");
    assert_eq!(ws.read_text().as_deref(), Some("after the pause"));
    // Close: answered in kind, then the connection ends.
    ws.write(&WsClient::frame(8, true, &[0x03, 0xe8]));
    let (op, _) = ws.read_frame().expect("close answered");
    assert_eq!(op, 8);
    let mut rest = Vec::new();
    let _ = ws.rd.read_to_end(&mut rest);
}
