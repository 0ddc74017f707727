//! Scanner tests, including the reassembly oracle: whatever the framing and chunking, every
//! message the server would decode as a Socket.IO CONNECT is one the scanner yielded (and the
//! gate re-encoded); every other message reaches the server unchanged and in order. The server
//! side is modelled by tungstenite (an independent RFC 6455 implementation) reassembling the
//! output, and by a transcription of socket.io-parser's `Number(str.charAt(0))` test.

use super::*;
use crate::socketio::connect_frame;
use crate::websocket::encode;
use proptest::prelude::*;
use std::io::{Cursor, Read, Write};

fn masked(op: u8, fin: bool, p: &[u8]) -> Vec<u8> {
    let mut f = encode(op, p, Some([1, 2, 3, 4])).to_vec();
    if !fin {
        f[0] &= 0x7f;
    }
    f
}

fn feed_all(s: &mut Scanner, stream: &[u8], chunk: usize) -> Vec<Item> {
    let mut items = Vec::new();
    for b in stream.chunks(chunk.max(1)) {
        items.extend(s.feed(Bytes::copy_from_slice(b)));
    }
    items
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

fn closed(items: &[Item]) -> bool {
    items.iter().any(|i| matches!(i, Item::Close(_)))
}

fn raw(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        if let Item::Raw(b) = i {
            out.extend_from_slice(b);
        }
    }
    out
}

#[test]
fn connect_split_across_reads_and_fragments() {
    let mut stream = masked(opcode::TEXT, false, b"40{\"tok");
    stream.extend(masked(0x9, true, b"ping"));
    stream.extend(masked(opcode::CONTINUATION, true, b"en\":\"Bearer x\"}"));
    stream.extend(masked(opcode::TEXT, true, b"42[\"hello\"]"));
    for chunk in 1..stream.len() {
        let items = feed_all(&mut Scanner::new(1024), &stream, chunk);
        let c = connects(&items);
        assert_eq!(c.len(), 1, "chunk {chunk}");
        assert_eq!(c[0].1.as_ref().unwrap()["token"], "Bearer x");
        let mut expected = masked(0x9, true, b"ping");
        expected.extend(masked(opcode::TEXT, true, b"42[\"hello\"]"));
        assert_eq!(
            raw(&items),
            expected,
            "control and later frames pass untouched"
        );
    }
}

#[test]
fn a_later_connect_split_after_its_engineio_type_is_still_a_connect() {
    // Finding: TEXT "4" (FIN=0) + CONTINUATION "0/admin,{...}" was never inspected.
    let mut stream = masked(opcode::TEXT, true, b"40{\"token\":\"t\"}");
    stream.extend(masked(opcode::TEXT, false, b"4"));
    stream.extend(masked(opcode::CONTINUATION, false, b""));
    stream.extend(masked(
        opcode::CONTINUATION,
        true,
        b"0/admin,{\"identity\":{\"user_id\":\"victim\"}}",
    ));
    for chunk in [1, 2, 5, 64] {
        let items = feed_all(&mut Scanner::new(1024), &stream, chunk);
        let c = connects(&items);
        assert_eq!(c.len(), 2, "{items:?}");
        assert_eq!(c[1].0, "/admin");
        assert!(raw(&items).is_empty(), "nothing passed unread: {items:?}");
    }
}

#[test]
fn every_spelling_the_server_reads_as_connect_is_caught() {
    // socket.io-parser: type = Number(str.charAt(0)); Number(""), Number(" "), Number("\u{a0}"),
    // Number("\u{feff}") ... are all 0 (CONNECT). Non-canonical spellings close the connection.
    for forged in [
        "4 /admin,{}",
        "4",
        "4\t{}",
        "4\u{a0}/admin,{}",
        "4\u{feff}{}",
        "4\u{2028}{}",
        "4\u{3000}{}",
        "40/admin,5{\"token\":\"t\"}",
        "401{}",
        "40 {}",
    ] {
        let mut stream = masked(opcode::TEXT, true, b"40{}");
        stream.extend(masked(opcode::TEXT, true, forged.as_bytes()));
        let items = feed_all(&mut Scanner::new(1024), &stream, 3);
        assert!(closed(&items), "{forged:?} got through: {items:?}");
        assert_eq!(connects(&items).len(), 1, "{forged:?}");
    }
    // Other packet types and astral characters are not CONNECTs.
    for other in ["42[\"e\"]", "4\u{1F600}", "3", "4x", "b0AAAA"] {
        let mut stream = masked(opcode::TEXT, true, b"40{}");
        let frame = masked(opcode::TEXT, true, other.as_bytes());
        stream.extend(&frame);
        let items = feed_all(&mut Scanner::new(1024), &stream, 4);
        assert!(!closed(&items), "{other:?}: {items:?}");
        assert_eq!(raw(&items), frame, "{other:?}");
    }
}

#[test]
fn namespaces_empty_auth_and_zero_copy_pass_through() {
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
    assert_eq!(s.feed(frame.clone()), vec![Item::Raw(frame)]);
    let bad = Scanner::new(64).feed(Bytes::from(masked(opcode::TEXT, true, b"40not json")));
    assert!(closed(&bad), "{bad:?}");
    let bad = Scanner::new(64).feed(Bytes::from(masked(opcode::TEXT, true, b"40{not json")));
    assert_eq!(connects(&bad), vec![("/".to_string(), None)]);
}

#[test]
fn protocol_violations_close() {
    let close =
        |bytes: Vec<u8>, limit: usize| closed(&Scanner::new(limit).feed(Bytes::from(bytes)));
    assert!(
        close(masked(opcode::TEXT, true, b"42[\"x\"]"), 64),
        "event before CONNECT"
    );
    assert!(
        close(masked(opcode::BINARY, true, b"x"), 64),
        "binary before CONNECT"
    );
    assert!(
        close(encode(opcode::TEXT, b"40{}", None).to_vec(), 64),
        "unmasked"
    );
    assert!(
        close(masked(opcode::TEXT, true, b"40{\"token\":\"long\"}"), 8),
        "over limit"
    );
    assert!(
        close(masked(opcode::CONTINUATION, true, b"x"), 64),
        "continuation first"
    );
    assert!(close(masked(0x9, false, b"x"), 64), "fragmented ping");
    let mut two = masked(opcode::TEXT, false, b"40");
    two.extend(masked(opcode::TEXT, true, b"{}"));
    assert!(close(two, 64), "new message inside a fragmented one");
    let mut frag_pong = masked(opcode::TEXT, false, b"3");
    frag_pong.extend(masked(opcode::CONTINUATION, true, b""));
    assert!(close(frag_pong, 64), "fragmented pong before CONNECT");
    // A long run of empty fragments cannot be held forever.
    let mut empties = masked(opcode::TEXT, false, b"4");
    for _ in 0..100 {
        empties.extend(masked(opcode::CONTINUATION, false, b""));
    }
    assert!(close(empties, 1024), "unbounded hold");
    // Found by fuzzing: a 64-bit length with its top bit set (RFC 6455 §5.2 forbids it) once
    // overflowed the length arithmetic.
    let mut huge = vec![0x80 | opcode::CONTINUATION, 0x80 | 127];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    let mut held = masked(opcode::TEXT, false, b"4");
    held.extend(&huge);
    assert!(close(held, 1024), "huge continuation");
    let mut pass = masked(opcode::TEXT, true, b"40{}");
    pass.extend(&huge);
    assert!(close(pass, 1024), "huge frame");
    let pong = Scanner::new(64).feed(Bytes::from(masked(opcode::TEXT, true, b"3")));
    assert_eq!(
        pong,
        vec![Item::Raw(Bytes::from(masked(opcode::TEXT, true, b"3")))]
    );
}

/// socket.io-parser 4.2's view of one reassembled text message: is it a CONNECT?
/// (engine.io-parser: type = charAt(0), "4" is a message; socket.io-parser: CONNECT when
/// Number(charAt(0)) of the rest is 0, which holds for "", "0" and JavaScript whitespace.)
fn server_sees_connect(msg: &str) -> bool {
    let Some(rest) = msg.strip_prefix('4') else {
        return false;
    };
    match rest.chars().next() {
        None => true,
        Some(c) if (c as u32) > 0xffff => false,
        Some(c) => c == '0' || c.is_whitespace() && c != '\u{85}' || c == '\u{feff}',
    }
}

/// An in-memory stream for tungstenite: reads the given bytes, swallows what it writes.
struct Pipe(Cursor<Vec<u8>>);

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The text and binary messages a server reassembles from `bytes` (client frames).
fn server_messages(bytes: Vec<u8>) -> Vec<Result<String, Vec<u8>>> {
    use tungstenite::protocol::{Role, WebSocket};
    let mut ws = WebSocket::from_raw_socket(Pipe(Cursor::new(bytes)), Role::Server, None);
    let mut out = Vec::new();
    while let Ok(m) = ws.read() {
        match m {
            tungstenite::Message::Text(t) => out.push(Ok(t.to_string())),
            tungstenite::Message::Binary(b) => out.push(Err(b.to_vec())),
            _ => {}
        }
    }
    out
}

const MARK: &str = "keygate-verified";

fn message() -> impl Strategy<Value = (bool, Vec<u8>)> {
    prop_oneof![
        4 => "[a-z]{0,6}".prop_map(|t| (false, format!("40{{\"token\":\"{t}\",\"identity\":\"forged\"}}").into_bytes())),
        2 => "/[a-z]{1,5}".prop_map(|ns| (false, format!("40{ns},{{\"identity\":{{\"user_id\":\"victim\"}}}}").into_bytes())),
        2 => prop::sample::select(vec!["4 /admin,{}", "4", "4\u{a0}{}", "4\u{feff}{}", "40/a,7{}", "4\t{}"])
            .prop_map(|s| (false, s.as_bytes().to_vec())),
        6 => "[0-9a-z\\[\\]\",]{0,40}".prop_map(|s| (false, format!("42[\"ev\",\"{s}\"]").into_bytes())),
        1 => prop::sample::select(vec!["2", "3", "4\u{1F600}", "5", "6", "b0AA"]).prop_map(|s| (false, s.as_bytes().to_vec())),
        2 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| (true, b)),
    ]
}

/// Frames one message as `cuts` fragments, with pings between them.
fn frames(binary: bool, payload: &[u8], cuts: &[usize], pings: &[bool]) -> Vec<u8> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
    points.sort_unstable();
    points.push(payload.len());
    let mut out = Vec::new();
    let mut from = 0;
    let n = points.len();
    for (k, &point) in points.iter().enumerate() {
        let to = point.max(from);
        let op = match (k, binary) {
            (0, true) => opcode::BINARY,
            (0, false) => opcode::TEXT,
            _ => opcode::CONTINUATION,
        };
        out.extend(masked(op, k == n - 1, &payload[from..to]));
        if pings.get(k).copied().unwrap_or(false) {
            out.extend(masked(0x9, true, b"p"));
        }
        from = to;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_server_reassembles_only_connects_keygate_read(
        first_ns in prop::option::of("/[a-z]{1,4}"),
        msgs in prop::collection::vec((message(), prop::collection::vec(0usize..64, 0..4), prop::collection::vec(any::<bool>(), 0..4)), 0..8),
        chunks in prop::collection::vec(1usize..23, 1..16),
    ) {
        let mut input = Vec::new();
        let first = match &first_ns {
            Some(ns) => format!("40{ns},{{\"token\":\"a\"}}"),
            None => "40{\"token\":\"a\"}".to_string(),
        };
        input.extend(masked(opcode::TEXT, true, first.as_bytes()));
        let mut sent: Vec<(bool, Vec<u8>)> = vec![(false, first.into_bytes())];
        for ((binary, payload), cuts, pings) in &msgs {
            input.extend(frames(*binary, payload, cuts, pings));
            sent.push((*binary, payload.clone()));
        }
        // Feed in pseudo-random chunk sizes; build what the gate would forward.
        let mut s = Scanner::new(1024);
        let mut forwarded = Vec::new();
        let mut yielded = 0usize;
        let (mut at, mut k) = (0usize, 0usize);
        let id = crate::auth::Identity::app("jwt".into(), MARK.into());
        'feed: while at < input.len() {
            let n = chunks[k % chunks.len()].min(input.len() - at);
            for item in s.feed(Bytes::copy_from_slice(&input[at..at + n])) {
                match item {
                    Item::Raw(b) => forwarded.extend_from_slice(&b),
                    Item::Connect { namespace, auth } => {
                        yielded += 1;
                        let auth = auth.unwrap_or_default();
                        forwarded.extend_from_slice(&connect_frame(&namespace, &auth, "identity", &id, None));
                    }
                    Item::Close(_) => break 'feed,
                }
            }
            at += n;
            k += 1;
        }
        let received = server_messages(forwarded);
        let mut connects_seen = 0usize;
        let mut others = Vec::new();
        for m in &received {
            match m {
                Ok(text) if server_sees_connect(text) => {
                    connects_seen += 1;
                    let json = text.find('{').map(|i| &text[i..]).unwrap_or("{}");
                    let v: Value = serde_json::from_str(json).unwrap();
                    prop_assert_eq!(&v["identity"]["credential"], MARK, "forged CONNECT reached the server: {}", text);
                }
                Ok(text) => others.push((false, text.as_bytes().to_vec())),
                Err(bin) => others.push((true, bin.clone())),
            }
        }
        prop_assert_eq!(connects_seen, yielded);
        // Every non-CONNECT message arrived unchanged and in order (a prefix of what was sent,
        // as the scanner may have closed the connection part-way).
        let sent_others: Vec<(bool, Vec<u8>)> = sent
            .into_iter()
            .filter(|(b, p)| *b || !server_sees_connect(std::str::from_utf8(p).unwrap()))
            .collect();
        prop_assert!(others.len() <= sent_others.len());
        prop_assert_eq!(&others[..], &sent_others[..others.len()]);
    }
}
