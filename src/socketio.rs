//! Socket.IO authentication inside the websocket stream (Engine.IO v4 / Socket.IO v5).
//!
//! socket.io-client sends `auth: { token: 'Bearer <jwt>' }` in its first packet after the
//! websocket opens, a CONNECT: text message `40{...}`, or `40/ns,{...}` for a namespace. No
//! HTTP header carries it. [`Scanner`] reads the client→server stream (masked frames, split
//! across reads or several per read, fragmented, with control frames interleaved) and yields,
//! in order: raw byte runs to forward untouched (zero-copy slices of the input), and every
//! CONNECT packet, which the proxy authenticates and re-encodes. Before the first CONNECT only
//! Engine.IO ping/pong may pass; anything else, an unmasked frame, an extension bit, or a
//! message over the limit closes the connection. After a CONNECT, only text frames starting
//! with `40` (later namespace CONNECTs) are read; every other frame passes as it came.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::auth::Identity;
use crate::websocket::{apply_mask, encode, opcode, parse_header, random_mask};

/// What the proxy does with the next part of the stream.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// Forward these bytes as they came.
    Raw(Bytes),
    /// A whole text message keygate read (Engine.IO ping/pong before CONNECT): forward it
    /// re-encoded.
    Message(Vec<u8>),
    /// A Socket.IO CONNECT: authenticate it. `auth` is `None` when the payload is not a JSON
    /// object.
    Connect {
        /// `/` or the namespace of `40/ns,`.
        namespace: String,
        /// The auth object sent by the client.
        auth: Option<Map<String, Value>>,
    },
    /// A protocol violation: close the connection.
    Close(&'static str),
}

/// The client→server stream state of one websocket.
#[derive(Debug)]
pub struct Scanner {
    pending: BytesMut,
    /// A candidate message being assembled from fragments (unmasked payload).
    held: Option<Vec<u8>>,
    /// Payload bytes of a pass-through frame still to come.
    skip: u64,
    connected: bool,
    limit: usize,
}

impl Scanner {
    /// A scanner reading messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Scanner {
        Scanner {
            pending: BytesMut::new(),
            held: None,
            skip: 0,
            connected: false,
            limit,
        }
    }

    /// Consumes the next chunk read from the client.
    pub fn feed(&mut self, chunk: Bytes) -> Vec<Item> {
        let data = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(&chunk);
            self.pending.split().freeze()
        };
        let mut items = Vec::new();
        let (mut i, mut raw_start) = (0usize, 0usize);
        let flush = |items: &mut Vec<Item>, from: usize, to: usize| {
            if to > from {
                items.push(Item::Raw(data.slice(from..to)));
            }
        };
        while i < data.len() {
            if self.skip > 0 {
                let n = self.skip.min((data.len() - i) as u64);
                i += n as usize;
                self.skip -= n;
                continue;
            }
            let Some(h) = parse_header(&data[i..]) else {
                break;
            };
            if h.mask.is_none() || h.rsv != 0 {
                flush(&mut items, raw_start, i);
                items.push(Item::Close("unmasked frame or unnegotiated extension"));
                return items;
            }
            if h.is_control() {
                if !h.fin || h.len > 125 {
                    flush(&mut items, raw_start, i);
                    items.push(Item::Close("invalid control frame"));
                    return items;
                }
                self.skip = h.len;
                i += h.header_len;
                continue;
            }
            let candidate = match (h.opcode, self.held.is_some()) {
                (opcode::CONTINUATION, true) => true,
                (opcode::TEXT, false) if !self.connected => true,
                (opcode::TEXT, false) => {
                    // After a CONNECT only a later CONNECT (`40...`) is read.
                    let need = h.header_len + (h.len.min(2) as usize);
                    if data.len() - i < need {
                        break;
                    }
                    let mut first = data[i + h.header_len..i + need].to_vec();
                    apply_mask(&mut first, h.mask.unwrap_or_default(), 0);
                    first == b"40"
                }
                (opcode::CONTINUATION | opcode::BINARY, false) if self.connected => false,
                _ => {
                    flush(&mut items, raw_start, i);
                    items.push(Item::Close(
                        "data before the Socket.IO CONNECT, or a bad fragment",
                    ));
                    return items;
                }
            };
            if !candidate {
                self.skip = h.len;
                i += h.header_len;
                continue;
            }
            let held = self.held.as_ref().map_or(0, Vec::len) as u64;
            if held + h.len > self.limit as u64 {
                flush(&mut items, raw_start, i);
                items.push(Item::Close("message over the limit"));
                return items;
            }
            let total = h.header_len + h.len as usize;
            if data.len() - i < total {
                break;
            }
            flush(&mut items, raw_start, i);
            let mut payload = data[i + h.header_len..i + total].to_vec();
            apply_mask(&mut payload, h.mask.unwrap_or_default(), 0);
            i += total;
            raw_start = i;
            self.held
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&payload);
            if h.fin {
                let msg = self.held.take().unwrap_or_default();
                let item = self.classify(msg);
                let stop = matches!(item, Item::Close(_));
                items.push(item);
                if stop {
                    return items;
                }
            }
        }
        flush(&mut items, raw_start, i);
        if i < data.len() {
            self.pending.extend_from_slice(&data[i..]);
        }
        items
    }

    fn classify(&mut self, msg: Vec<u8>) -> Item {
        if let Some(rest) = msg.strip_prefix(b"40") {
            self.connected = true;
            let (namespace, json) = match rest.first() {
                Some(b'/') => match rest.iter().position(|b| *b == b',') {
                    Some(c) => (&rest[..c], &rest[c + 1..]),
                    None => (rest, &b""[..]),
                },
                _ => (&b"/"[..], rest),
            };
            let namespace = String::from_utf8_lossy(namespace).into_owned();
            let auth = if json.is_empty() {
                Some(Map::new())
            } else {
                serde_json::from_slice::<Map<String, Value>>(json).ok()
            };
            return Item::Connect { namespace, auth };
        }
        if !self.connected && (msg.starts_with(b"2") || msg.starts_with(b"3")) && msg.len() <= 16 {
            return Item::Message(msg); // Engine.IO ping/pong
        }
        if self.connected {
            return Item::Message(msg);
        }
        Item::Close("data before the Socket.IO CONNECT")
    }
}

fn prefix(namespace: &str) -> String {
    if namespace == "/" {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// The CONNECT to forward: the client's auth object with `auth[key]` replaced by the verified
/// identity (`{"user_id", "method", "credential", "claims"}`), as a freshly masked frame.
pub fn connect_frame(
    namespace: &str,
    auth: &Map<String, Value>,
    key: &str,
    id: &Identity,
) -> Bytes {
    let mut auth = auth.clone();
    let claims: Map<String, Value> = id
        .claims
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
        .collect();
    auth.insert(
        key.to_string(),
        serde_json::json!({
            "user_id": id.user_id,
            "method": &*id.method,
            "credential": &*id.credential,
            "claims": claims,
        }),
    );
    let payload = format!("40{}{}", prefix(namespace), Value::Object(auth));
    encode(opcode::TEXT, payload.as_bytes(), Some(random_mask()))
}

/// The refusal sent to the client: `44{"message":"unauthorized","data":{"reason":...}}`
/// (with the namespace prefix) and a close frame 1008 (policy violation).
pub fn refusal(namespace: &str, reason: &str) -> Bytes {
    // Key order as in the spec; `reason` is one of the fixed reason codes.
    let body = format!(r#"{{"message":"unauthorized","data":{{"reason":"{reason}"}}}}"#);
    let mut out = BytesMut::new();
    out.extend_from_slice(&encode(
        opcode::TEXT,
        format!("44{}{body}", prefix(namespace)).as_bytes(),
        None,
    ));
    out.extend_from_slice(&crate::websocket::close_frame(1008, "unauthorized"));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(op: u8, fin: bool, p: &[u8]) -> Vec<u8> {
        let mut f = encode(op, p, Some([1, 2, 3, 4])).to_vec();
        if !fin {
            f[0] &= 0x7f;
        }
        f
    }

    /// The bytes forwarded untouched, concatenated.
    fn raw_bytes(items: &[Item]) -> Vec<u8> {
        let mut out = Vec::new();
        for i in items {
            if let Item::Raw(b) = i {
                out.extend_from_slice(b);
            }
        }
        out
    }

    fn connects(items: &[Item]) -> Vec<(String, Option<Map<String, Value>>)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Connect { namespace, auth } => Some((namespace.clone(), auth.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn connect_split_across_reads_and_fragments() {
        let mut stream = masked(opcode::TEXT, false, b"40{\"tok");
        stream.extend(masked(0x9, true, b"ping")); // interleaved control frame
        stream.extend(masked(opcode::CONTINUATION, true, b"en\":\"Bearer x\"}"));
        stream.extend(masked(opcode::TEXT, true, b"42[\"hello\"]"));
        let mut s = Scanner::new(1024);
        let mut items = Vec::new();
        for b in stream.chunks(3) {
            items.extend(s.feed(Bytes::copy_from_slice(b)));
        }
        let c = connects(&items);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "/");
        assert_eq!(c[0].1.as_ref().unwrap()["token"], "Bearer x");
        let raw = raw_bytes(&items);
        let mut expected = masked(0x9, true, b"ping");
        expected.extend(masked(opcode::TEXT, true, b"42[\"hello\"]"));
        assert_eq!(raw, expected, "control and later frames pass untouched");
    }

    #[test]
    fn every_chunking_yields_the_same_stream() {
        let mut stream = masked(
            opcode::TEXT,
            false,
            b"40{\"token\":\"Bearer abc.def.ghi\",\"identity\":\"x\"}",
        );
        stream.extend(masked(0x9, true, b"keepalive"));
        stream.extend(masked(opcode::CONTINUATION, false, b""));
        stream.extend(masked(opcode::CONTINUATION, true, b""));
        stream.extend(masked(opcode::TEXT, true, b"42[\"ping\",{\"raw\":true}]"));
        stream.extend(masked(opcode::TEXT, true, b"40/tenant,{}"));
        stream.extend(masked(opcode::BINARY, true, &[7; 200]));
        let mut raw_expected = masked(0x9, true, b"keepalive");
        raw_expected.extend(masked(opcode::TEXT, true, b"42[\"ping\",{\"raw\":true}]"));
        raw_expected.extend(masked(opcode::BINARY, true, &[7; 200]));
        // Uniform chunk sizes, then pseudo-random ones (xorshift; deterministic).
        let mut plans: Vec<Vec<usize>> = (1..=stream.len()).map(|n| vec![n]).collect();
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..500 {
            plans.push(
                (0..64)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        1 + (x % 23) as usize
                    })
                    .collect(),
            );
        }
        for (p, plan) in plans.iter().enumerate() {
            let size = p;
            let mut s = Scanner::new(1024);
            let mut items = Vec::new();
            let (mut at, mut k) = (0, 0);
            while at < stream.len() {
                let n = plan[k % plan.len()].min(stream.len() - at);
                items.extend(s.feed(Bytes::copy_from_slice(&stream[at..at + n])));
                at += n;
                k += 1;
            }
            assert!(
                !items.iter().any(|i| matches!(i, Item::Close(_))),
                "chunk size {size}: {items:?}"
            );
            let c = connects(&items);
            assert_eq!(c.len(), 2, "chunk size {size}");
            assert_eq!(
                c[0].1.as_ref().unwrap()["token"],
                "Bearer abc.def.ghi",
                "chunk size {size}"
            );
            assert_eq!(c[1].0, "/tenant");
            let raw = raw_bytes(&items);
            assert_eq!(raw, raw_expected, "chunk size {size}");
        }
    }

    #[test]
    fn namespaces_and_later_connects() {
        let mut s = Scanner::new(1024);
        let items = s.feed(Bytes::from(masked(
            opcode::TEXT,
            true,
            b"40/tenant,{\"token\":\"t\"}",
        )));
        assert_eq!(connects(&items)[0].0, "/tenant");
        let items = s.feed(Bytes::from(masked(opcode::TEXT, true, b"40/other,")));
        assert_eq!(
            connects(&items),
            vec![("/other".to_string(), Some(Map::new()))]
        );
        let frame = Bytes::from(masked(opcode::BINARY, true, &[9; 300]));
        assert_eq!(
            s.feed(frame.clone()),
            vec![Item::Raw(frame)],
            "zero-copy pass-through"
        );
    }

    #[test]
    fn protocol_violations_close() {
        assert!(matches!(
            Scanner::new(64).feed(Bytes::from(masked(opcode::TEXT, true, b"42[\"x\"]")))[..],
            [Item::Close(_)]
        ));
        assert!(matches!(
            Scanner::new(64).feed(encode(opcode::TEXT, b"40{}", None))[..],
            [Item::Close(_)]
        ));
        assert!(matches!(
            Scanner::new(8).feed(Bytes::from(masked(
                opcode::TEXT,
                true,
                b"40{\"token\":\"long\"}"
            )))[..],
            [Item::Close(_)]
        ));
        let pong = Scanner::new(64).feed(Bytes::from(masked(opcode::TEXT, true, b"3")));
        assert_eq!(pong, vec![Item::Message(b"3".to_vec())]);
        let bad = Scanner::new(64).feed(Bytes::from(masked(opcode::TEXT, true, b"40not json")));
        assert_eq!(connects(&bad), vec![("/".to_string(), None)]);
    }

    #[test]
    fn refusal_and_connect_frames() {
        let r = refusal("/tenant", "token_expired");
        let h = parse_header(&r).unwrap();
        assert_eq!(
            &r[h.header_len..h.header_len + h.len as usize],
            br#"44/tenant,{"message":"unauthorized","data":{"reason":"token_expired"}}"#
        );
        let close = &r[h.header_len + h.len as usize..];
        assert_eq!(&close[..4], &[0x88, 14, 0x03, 0xf0]);
    }
}
