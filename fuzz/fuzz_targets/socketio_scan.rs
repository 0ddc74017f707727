//! The Socket.IO scanner's reassembly oracle: whatever the messages, their fragmentation, the
//! interleaved control frames and the read boundaries, the messages a server reassembles from
//! what keygate forwards (tungstenite, an independent RFC 6455 implementation) are exactly the
//! non-CONNECT messages sent, unchanged and in order, plus the CONNECTs keygate re-encoded; no
//! message the server would decode as a CONNECT (socket.io-parser's `Number(charAt(0))`) got
//! through unread.
#![no_main]
use arbitrary::Arbitrary;
use bytes::Bytes;
use keygate::socketio::scan::{Item, Scanner};
use keygate::websocket::{encode, opcode};
use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read, Write};

#[derive(Arbitrary, Debug)]
struct Msg {
    binary: bool,
    payload: Vec<u8>,
    cuts: Vec<u8>,
    pings: Vec<bool>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    msgs: Vec<Msg>,
    chunks: Vec<u8>,
    raw_tail: Vec<u8>,
}

fn masked(op: u8, fin: bool, p: &[u8]) -> Vec<u8> {
    let mut f = encode(op, p, Some([7, 1, 9, 3])).to_vec();
    if !fin {
        f[0] &= 0x7f;
    }
    f
}

fn server_sees_connect(msg: &str) -> bool {
    let Some(rest) = msg.strip_prefix('4') else {
        return false;
    };
    match rest.chars().next() {
        None => true,
        Some(c) if (c as u32) > 0xffff => false,
        Some(c) => c == '0' || (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}',
    }
}

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

fuzz_target!(|input: Input| {
    let mut stream = masked(opcode::TEXT, true, br#"40{"token":"t"}"#);
    let mut sent: Vec<(bool, Vec<u8>)> = Vec::new();
    for m in &input.msgs {
        if !m.binary && std::str::from_utf8(&m.payload).is_err() {
            continue; // a server refuses invalid UTF-8 text outright
        }
        let mut points: Vec<usize> = m
            .cuts
            .iter()
            .map(|c| *c as usize % (m.payload.len() + 1))
            .collect();
        points.sort_unstable();
        points.push(m.payload.len());
        let mut from = 0;
        for (k, &p) in points.iter().enumerate() {
            let to = p.max(from);
            let op = match (k, m.binary) {
                (0, true) => opcode::BINARY,
                (0, false) => opcode::TEXT,
                _ => opcode::CONTINUATION,
            };
            stream.extend(masked(op, k == points.len() - 1, &m.payload[from..to]));
            if m.pings.get(k).copied().unwrap_or(false) {
                stream.extend(masked(0x9, true, b"p"));
            }
            from = to;
        }
        sent.push((m.binary, m.payload.clone()));
    }
    stream.extend_from_slice(&input.raw_tail); // and whatever bytes follow
    let mut scanner = Scanner::new(4096);
    let mut forwarded = Vec::new();
    let mut yielded = 0usize;
    let id = keygate::auth::Identity::app("jwt".into(), "keygate-verified".into());
    let (mut at, mut k) = (0usize, 0usize);
    'feed: while at < stream.len() {
        let n = (input
            .chunks
            .get(k % input.chunks.len().max(1))
            .copied()
            .unwrap_or(7) as usize
            % 64
            + 1)
        .min(stream.len() - at);
        for item in scanner.feed(Bytes::copy_from_slice(&stream[at..at + n])) {
            match item {
                Item::Raw(b) => forwarded.extend_from_slice(&b),
                Item::Connect { namespace, auth } => {
                    yielded += 1;
                    let auth = auth.unwrap_or_default();
                    forwarded.extend_from_slice(&keygate::socketio::connect_frame(
                        &namespace, &auth, "identity", &id, None,
                    ));
                }
                Item::Close(_) => break 'feed,
            }
        }
        at += n;
        k += 1;
    }
    let mut ws = tungstenite::WebSocket::from_raw_socket(
        Pipe(Cursor::new(forwarded)),
        tungstenite::protocol::Role::Server,
        None,
    );
    let mut connects = 0usize;
    let mut others: Vec<(bool, Vec<u8>)> = Vec::new();
    while let Ok(m) = ws.read() {
        match m {
            tungstenite::Message::Text(t) if server_sees_connect(&t) => {
                connects += 1;
                let json = t.find('{').map(|i| &t[i..]).unwrap_or("{}");
                let v: serde_json::Value = serde_json::from_str(json).expect("keygate's own JSON");
                assert_eq!(
                    v["identity"]["credential"], "keygate-verified",
                    "forged CONNECT: {t}"
                );
            }
            tungstenite::Message::Text(t) => others.push((false, t.as_bytes().to_vec())),
            tungstenite::Message::Binary(b) => others.push((true, b.to_vec())),
            _ => {}
        }
    }
    assert_eq!(connects, yielded);
    let sent_others: Vec<(bool, Vec<u8>)> = sent
        .into_iter()
        .filter(|(b, p)| *b || !server_sees_connect(std::str::from_utf8(p).unwrap()))
        .collect();
    // The sent messages arrive first, unchanged (a prefix if the scanner closed part-way);
    // anything after them came from the raw tail.
    let n = others.len().min(sent_others.len());
    assert_eq!(&others[..n], &sent_others[..n]);
});
