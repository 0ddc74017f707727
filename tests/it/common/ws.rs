//! A raw websocket client (RFC 6455) for byte-level tests: frames are built and parsed by
//! tungstenite (an implementation independent of keygate's), and written exactly as told, split
//! and fragmented at will.

use std::io::{BufReader, Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};

use tungstenite::protocol::frame::coding::OpCode;
use tungstenite::protocol::frame::{Frame, FrameHeader};

use super::http::{Conn, Resp};

/// An open websocket through keygate.
pub(crate) struct WsClient {
    pub(crate) rd: BufReader<TcpStream>,
}

/// Opens a websocket through keygate: `Ok` after a 101, `Err(response)` otherwise.
pub(crate) fn ws_connect(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<WsClient, Resp> {
    let mut c = Conn::open(addr);
    let mut req = format!(
        "GET {target} HTTP/1.1\r\nHost: keygate.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.rd.get_mut().write_all(req.as_bytes()).unwrap();
    let resp = c.read_response();
    if resp.status == 101 {
        Ok(WsClient { rd: c.rd })
    } else {
        Err(resp)
    }
}

impl WsClient {
    /// Writes raw bytes (already framed).
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.rd.get_mut().write_all(bytes).unwrap();
    }

    /// A masked client frame (`opcode` 0x0-0xf, FIN as given), encoded by tungstenite.
    pub(crate) fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            is_final: fin,
            opcode: OpCode::from(opcode),
            mask: Some([0x12, 0x34, 0x56, 0x78]),
            ..FrameHeader::default()
        };
        let mut out = Vec::new();
        Frame::from_payload(header, payload.to_vec().into()).format(&mut out).unwrap();
        out
    }

    pub(crate) fn send_text(&mut self, text: &str) {
        let f = Self::frame(1, true, text.as_bytes());
        self.write(&f);
    }

    /// Reads one frame, parsed by tungstenite: (opcode, unmasked payload); `None` when the
    /// connection closed or the bytes are not a frame.
    pub(crate) fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = Vec::new();
        let (header, len) = loop {
            if let Some(parsed) = FrameHeader::parse(&mut Cursor::new(&head)).ok()? {
                break parsed;
            }
            let mut b = [0u8; 1];
            self.rd.read_exact(&mut b).ok()?;
            head.push(b[0]);
        };
        let mut payload = vec![0u8; usize::try_from(len).ok()?];
        self.rd.read_exact(&mut payload).ok()?;
        if let Some(mask) = header.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        Some((header.opcode.into(), payload))
    }

    /// Reads frames until a text frame; `None` if the connection closed first.
    pub(crate) fn read_text(&mut self) -> Option<String> {
        loop {
            let (op, p) = self.read_frame()?;
            match op {
                1 => return Some(String::from_utf8(p).unwrap()),
                8 => return None,
                _ => continue,
            }
        }
    }
}
