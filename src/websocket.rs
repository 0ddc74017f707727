//! RFC 6455, as much as keygate needs: the opening handshake's request (§4.1, [`is_upgrade`]),
//! frame headers (§5.2), masking (§5.3), and building frames (text, close §5.5.1).

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    CONNECTION, CONTENT_LENGTH, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, TRANSFER_ENCODING,
    UPGRADE,
};
use pingora::http::RequestHeader;

/// Whether `req` is a real RFC 6455 §4.1 opening handshake: HTTP/1.1 `GET`, exactly one
/// `Upgrade: websocket`, a `Connection` token `upgrade`, `Sec-WebSocket-Version: 13`, one
/// `Sec-WebSocket-Key` that is 16 bytes in base64, and no body. Anything looser is not an
/// upgrade pingora would forward as one, so keygate never treats it as one either.
pub fn is_upgrade(req: &RequestHeader) -> bool {
    is_handshake(req.version, &req.method, &req.headers)
}

/// [`is_upgrade`] over the parts of a request: its version, method and headers.
pub fn is_handshake(
    version: http::Version,
    method: &http::Method,
    headers: &http::HeaderMap,
) -> bool {
    use base64::Engine;
    let one = |name| {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    };
    let connection_upgrade = headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    let key_ok = one(SEC_WEBSOCKET_KEY).is_some_and(|k| {
        base64::engine::general_purpose::STANDARD
            .decode(k.as_bytes())
            .is_ok_and(|d| d.len() == 16)
    });
    let no_body = !headers.contains_key(TRANSFER_ENCODING)
        && headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .all(|v| v.as_bytes() == b"0");
    version == http::Version::HTTP_11
        && *method == http::Method::GET
        && one(UPGRADE).is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && connection_upgrade
        && one(SEC_WEBSOCKET_VERSION).is_some_and(|v| v.as_bytes() == b"13")
        && key_ok
        && no_body
}

/// Opcodes (RFC 6455 §5.2).
pub mod opcode {
    /// Continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// UTF-8 text.
    pub const TEXT: u8 = 0x1;
    /// Binary data.
    pub const BINARY: u8 = 0x2;
    /// Connection close.
    pub const CLOSE: u8 = 0x8;
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: the last frame of a message.
    pub fin: bool,
    /// RSV1-3 (non-zero only with an extension, which keygate never negotiates).
    pub rsv: u8,
    /// Opcode (see [`opcode`]).
    pub opcode: u8,
    /// Masking key: present on every client frame.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub len: u64,
    /// Header length in bytes (2 to 14).
    pub header_len: usize,
}

impl FrameHeader {
    /// Whether this is a control frame (close, ping, pong).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parses the frame header at the start of `buf`; `None` if more bytes are needed.
pub fn parse_header(buf: &[u8]) -> Option<FrameHeader> {
    let b0 = *buf.first()?;
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as u64,
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (n as u64, 2),
    };
    let mask = if masked {
        let m: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    Some(FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        mask,
        len,
        header_len: at,
    })
}

/// Unmasks (or masks) `data` in place; `offset` is the position of `data[0]` in the payload.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) % 4];
    }
}

/// Encodes one final frame; masked with `mask` when given (client frames must be, RFC 6455 §5.3).
pub fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 14);
    out.put_u8(0x80 | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.put_u8(m | n as u8),
        n if n <= u16::MAX as usize => {
            out.put_u8(m | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(m | 127);
            out.put_u64(n as u64);
        }
    }
    let start = out.len() + mask.map_or(0, |_| 4);
    if let Some(k) = mask {
        out.put_slice(&k);
    }
    out.put_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut out[start..], k, 0);
    }
    out.freeze()
}

/// A server close frame with status `code` (e.g. 1008 policy violation, RFC 6455 §7.4.1).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    encode(opcode::CLOSE, &p, None)
}

/// A fresh random masking key.
pub fn random_mask() -> [u8; 4] {
    let mut k = [0u8; 4];
    aws_lc_rs::rand::fill(&mut k).expect("system randomness");
    k
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim().as_bytes());
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(version: http::Version, extra: &[(&str, &str)], skip: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/ws", None).unwrap();
        r.set_version(version);
        for (k, v) in [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ] {
            if k != skip {
                r.append_header(k, v).unwrap();
            }
        }
        for (k, v) in extra {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn only_real_opening_handshakes_are_upgrades() {
        use http::Version;
        assert!(is_upgrade(&handshake(Version::HTTP_11, &[], "")));
        assert!(
            !is_upgrade(&handshake(Version::HTTP_10, &[], "")),
            "HTTP/1.0"
        );
        for missing in [
            "upgrade",
            "connection",
            "sec-websocket-version",
            "sec-websocket-key",
        ] {
            assert!(
                !is_upgrade(&handshake(Version::HTTP_11, &[], missing)),
                "{missing}"
            );
        }
        for extra in [
            ("upgrade", "h2c"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("content-length", "5"),
            ("transfer-encoding", "chunked"),
        ] {
            assert!(
                !is_upgrade(&handshake(Version::HTTP_11, &[extra], "")),
                "{extra:?}"
            );
        }
        let mut h2c = handshake(Version::HTTP_11, &[], "upgrade");
        h2c.append_header("upgrade", "h2c, websocket").unwrap();
        assert!(!is_upgrade(&h2c));
        let mut bad_key = handshake(Version::HTTP_11, &[], "sec-websocket-key");
        bad_key.append_header("sec-websocket-key", "short").unwrap();
        assert!(!is_upgrade(&bad_key));
        let mut post = handshake(Version::HTTP_11, &[], "");
        post.set_method(http::Method::POST);
        assert!(!is_upgrade(&post));
    }

    #[test]
    fn rfc6455_examples() {
        // §5.7: a single-frame masked text message "Hello".
        let f = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = parse_header(&f).unwrap();
        assert!(h.fin && h.opcode == opcode::TEXT && h.len == 5 && h.header_len == 6);
        let mut p = f[6..].to_vec();
        apply_mask(&mut p, h.mask.unwrap(), 0);
        assert_eq!(p, b"Hello");
        assert_eq!(
            &encode(opcode::TEXT, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]))[..],
            &f[..]
        );
        // §1.3 accept key.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(parse_header(&f[..1]).is_none());
        assert!(parse_header(&[0x81, 0xfe, 0x01]).is_none());
        let long = encode(opcode::BINARY, &[0u8; 70000], None);
        assert_eq!(parse_header(&long).unwrap().len, 70000);
    }
}
