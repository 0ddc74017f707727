//! The client→server stream of a Socket.IO websocket, read message by message.
//!
//! socket.io-client sends `auth` inside its CONNECT packet, an Engine.IO message (`4`) whose
//! Socket.IO packet type is `0`: `40{...}`, or `40/ns,{...}` for a namespace. The server decides
//! the packet type with `Number(str.charAt(0))` (socket.io-parser 4.2 `decodeString`), so a
//! message is a CONNECT when the character after the Engine.IO `4` is `0`, **missing** (`"4"`),
//! or any JavaScript whitespace (`" "`, tab, NBSP, BOM, ...), whatever the websocket framing:
//! the server reassembles fragments (RFC 6455 §5.4) before it looks.
//!
//! [`Scanner`] therefore classifies every text *message*, not every frame: it holds a message's
//! first fragments until the first characters are known (at most five payload bytes), then
//! either lets the message pass as it came (raw, zero-copy slices of the input, streamed) or, for
//! anything that is or might be a CONNECT, reads it whole and yields it as [`Item::Connect`] to be
//! authenticated and re-encoded. A CONNECT that is not in the canonical `40[/ns,]{json}` form
//! closes the connection. Before the first CONNECT only unfragmented Engine.IO ping/pong may pass.
//! Unmasked frames, extension bits, bad fragmentation and over-long CONNECTs close it too.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use super::connect::{classify, parse_connect, Class};
use crate::websocket::{apply_mask, opcode, parse_header};

/// What the gate does with the next part of the stream.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// Forward these bytes as they came.
    Raw(Bytes),
    /// A whole Socket.IO CONNECT: authenticate it, then forward it re-encoded. `auth` is `None`
    /// when its payload is not a JSON object.
    Connect {
        /// `/` or the namespace of `40/ns,`.
        namespace: String,
        /// The auth object sent by the client.
        auth: Option<Map<String, Value>>,
    },
    /// A protocol violation: close the connection (1008).
    Close(&'static str),
}

/// The state of the data message in progress.
#[derive(Debug)]
enum Msg {
    /// Between messages.
    Idle,
    /// A message known not to be a CONNECT: its continuations pass as they come.
    Passing,
    /// A text message held back: undecided (`connect: false`, `raw` keeps its original frames)
    /// or a CONNECT being read whole (`connect: true`).
    Held {
        payload: Vec<u8>,
        raw: Vec<u8>,
        connect: bool,
    },
}

/// Payload bytes that decide a message's class: the Engine.IO type and one UTF-8 character.
const DECIDING: usize = 4;
/// Most original frame bytes held for an undecided message (tiny fragments only).
const HOLD_LIMIT: usize = 256;
/// Longest Engine.IO ping/pong accepted before the first CONNECT (`2`, `3`, `3probe`).
const PING_LIMIT: u64 = 16;

/// The client→server stream state of one websocket.
#[derive(Debug)]
pub struct Scanner {
    pending: BytesMut,
    /// Payload bytes of a pass-through frame still to come.
    skip: u64,
    msg: Msg,
    connected: bool,
    limit: usize,
}

impl Scanner {
    /// A scanner reading CONNECT messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Scanner {
        Scanner {
            pending: BytesMut::new(),
            skip: 0,
            msg: Msg::Idle,
            connected: false,
            limit,
        }
    }

    /// Consumes the next chunk read from the client; the items come in stream order.
    pub fn feed(&mut self, chunk: Bytes) -> Vec<Item> {
        let data = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(&chunk);
            self.pending.split().freeze()
        };
        let mut out = Out {
            items: Vec::new(),
            data: &data,
            run: 0,
        };
        let mut i = 0usize;
        while i < data.len() {
            if self.skip > 0 {
                let n = self.skip.min((data.len() - i) as u64);
                i += n as usize;
                self.skip -= n;
                continue;
            }
            match self.frame(&data[i..], &mut out, i) {
                Step::Pass(header_len, len) => {
                    i += header_len;
                    self.skip = len;
                }
                Step::Took(n) => {
                    i += n;
                    out.run = i;
                }
                Step::Wait => break,
                Step::Close(why) => {
                    out.flush(i);
                    out.items.push(Item::Close(why));
                    return out.items;
                }
            }
        }
        out.flush(i);
        if i < data.len() {
            self.pending.extend_from_slice(&data[i..]);
        }
        out.items
    }

    /// Handles the frame at the start of `buf` (at offset `at` of the chunk).
    fn frame(&mut self, buf: &[u8], out: &mut Out<'_>, at: usize) -> Step {
        let Some(h) = parse_header(buf) else {
            return Step::Wait;
        };
        if h.mask.is_none() || h.rsv != 0 {
            return Step::Close("unmasked frame or unnegotiated extension");
        }
        // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0. Refusing it also
        // keeps every length sum below in range.
        if h.len > i64::MAX as u64 {
            return Step::Close("invalid frame length");
        }
        if h.is_control() {
            if !h.fin || h.len > 125 {
                return Step::Close("invalid control frame");
            }
            return Step::Pass(h.header_len, h.len);
        }
        let mask = h.mask.unwrap_or_default();
        let total = h.header_len as u64 + h.len;
        let whole = || {
            (buf.len() as u64 >= total).then(|| {
                let mut p = buf[h.header_len..total as usize].to_vec();
                apply_mask(&mut p, mask, 0);
                p
            })
        };
        match (&mut self.msg, h.opcode) {
            (Msg::Idle, opcode::BINARY) if self.connected => {
                self.msg = if h.fin { Msg::Idle } else { Msg::Passing };
                Step::Pass(h.header_len, h.len)
            }
            (Msg::Passing, opcode::CONTINUATION) => {
                if h.fin {
                    self.msg = Msg::Idle;
                }
                Step::Pass(h.header_len, h.len)
            }
            (Msg::Idle, opcode::TEXT) => {
                let peek = (h.len as usize).min(DECIDING);
                if buf.len() < h.header_len + peek {
                    return Step::Wait;
                }
                let mut first = buf[h.header_len..h.header_len + peek].to_vec();
                apply_mask(&mut first, mask, 0);
                let complete = h.fin && h.len as usize == peek;
                match classify(&first, complete) {
                    Class::Other => self.pass_text(&first, &h),
                    Class::NeedMore => {
                        let Some(payload) = whole() else {
                            return Step::Wait;
                        };
                        out.flush(at);
                        self.msg = Msg::Held {
                            payload,
                            raw: buf[..total as usize].to_vec(),
                            connect: false,
                        };
                        Step::Took(total as usize)
                    }
                    Class::Connect => {
                        if h.len > self.limit as u64 {
                            return Step::Close("CONNECT over the limit");
                        }
                        let Some(payload) = whole() else {
                            return Step::Wait;
                        };
                        out.flush(at);
                        self.msg = Msg::Held {
                            payload,
                            raw: Vec::new(),
                            connect: true,
                        };
                        match self.finish_held(h.fin, out) {
                            Some(why) => Step::Close(why),
                            None => Step::Took(total as usize),
                        }
                    }
                }
            }
            (
                Msg::Held {
                    payload,
                    raw,
                    connect,
                },
                opcode::CONTINUATION,
            ) => {
                let held = payload.len() as u64 + h.len;
                if held > self.limit as u64
                    || (!*connect && raw.len() as u64 + total > HOLD_LIMIT as u64)
                {
                    return Step::Close("CONNECT over the limit");
                }
                let Some(more) = whole() else {
                    return Step::Wait;
                };
                out.flush(at);
                payload.extend_from_slice(&more);
                if !*connect {
                    raw.extend_from_slice(&buf[..total as usize]);
                }
                match self.finish_held(h.fin, out) {
                    Some(why) => Step::Close(why),
                    None => Step::Took(total as usize),
                }
            }
            (Msg::Idle, opcode::BINARY) => Step::Close("data before the Socket.IO CONNECT"),
            _ => Step::Close("bad fragmentation"),
        }
    }

    /// A text message that is not a CONNECT: passes if the connection may carry it.
    fn pass_text(&mut self, first: &[u8], h: &crate::websocket::FrameHeader) -> Step {
        let ping = h.fin && h.len <= PING_LIMIT && matches!(first.first(), Some(b'2' | b'3'));
        if !self.connected && !ping {
            return Step::Close("data before the Socket.IO CONNECT");
        }
        self.msg = if h.fin { Msg::Idle } else { Msg::Passing };
        Step::Pass(h.header_len, h.len)
    }

    /// Re-examines a held message after a fragment and emits it once decided; `Some(why)` when
    /// the connection must close instead.
    fn finish_held(&mut self, fin: bool, out: &mut Out<'_>) -> Option<&'static str> {
        let Msg::Held {
            payload,
            raw,
            connect,
        } = &mut self.msg
        else {
            return None;
        };
        if !*connect {
            match classify(payload, fin) {
                Class::NeedMore => return None,
                Class::Connect => {
                    *connect = true;
                    raw.clear();
                }
                // Before the first CONNECT only an unfragmented ping/pong may pass.
                Class::Other if !self.connected => {
                    return Some("data before the Socket.IO CONNECT")
                }
                Class::Other => {
                    out.items.push(Item::Raw(Bytes::from(std::mem::take(raw))));
                    self.msg = if fin { Msg::Idle } else { Msg::Passing };
                    return None;
                }
            }
        }
        if !fin {
            return None;
        }
        let Msg::Held { payload, .. } = std::mem::replace(&mut self.msg, Msg::Idle) else {
            return None;
        };
        let Some((namespace, auth)) = parse_connect(&payload) else {
            return Some("CONNECT not in the canonical 40[/ns,]{...} form");
        };
        self.connected = true;
        out.items.push(Item::Connect { namespace, auth });
        None
    }
}

/// What one frame did to the stream.
enum Step {
    /// Forward the frame as it comes: header length, payload length.
    Pass(usize, u64),
    /// The frame (this many bytes) was consumed into the scanner.
    Took(usize),
    /// More bytes are needed.
    Wait,
    /// Close the connection.
    Close(&'static str),
}

/// Items being produced for one chunk, with the start of the current run of raw bytes.
struct Out<'a> {
    items: Vec<Item>,
    data: &'a Bytes,
    run: usize,
}

impl Out<'_> {
    /// Emits the raw bytes from the run's start up to `to`.
    fn flush(&mut self, to: usize) {
        if to > self.run {
            self.items.push(Item::Raw(self.data.slice(self.run..to)));
        }
        self.run = to;
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
