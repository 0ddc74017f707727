//! What the server reads as a Socket.IO CONNECT: socket.io-parser 4.2's `decodeString` takes the
//! packet type as `Number(str.charAt(0))`, which is 0 (CONNECT) for `"0"`, for no character at
//! all, and for any JavaScript whitespace. [`classify`] answers that for the first bytes of a
//! text message; [`parse_connect`] reads the one canonical spelling keygate forwards.

use serde_json::{Map, Value};

/// How far the first characters of a text message go.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Class {
    Connect,
    Other,
    NeedMore,
}

/// JavaScript's `WhiteSpace` and `LineTerminator` (ECMA-262 §12.2-12.3): `Number()` of one of
/// these, or of the empty string, is 0.
fn js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// Whether a text message starting with `p` (the whole message when `complete`) would be a
/// Socket.IO CONNECT on the server. Invalid UTF-8 where the packet type goes counts as one (and
/// so is refused by [`parse_connect`]): fail closed.
pub(super) fn classify(p: &[u8], complete: bool) -> Class {
    let Some(&eio) = p.first() else {
        return if complete {
            Class::Other
        } else {
            Class::NeedMore
        };
    };
    if eio != b'4' {
        return Class::Other;
    }
    let rest = &p[1..];
    let Some(&c) = rest.first() else {
        // `"4"`: the Socket.IO packet is "", and Number("") is 0.
        return if complete {
            Class::Connect
        } else {
            Class::NeedMore
        };
    };
    let n = match c {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        // Four-byte characters are a surrogate pair in JavaScript: charAt gives a lone
        // surrogate, Number() of which is NaN.
        0xf0..=0xf4 => return Class::Other,
        _ => return Class::Connect,
    };
    if rest.len() < n {
        return if complete {
            Class::Connect
        } else {
            Class::NeedMore
        };
    }
    match std::str::from_utf8(&rest[..n])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some('0') => Class::Connect,
        Some(ch) if js_space(ch) => Class::Connect,
        Some(_) => Class::Other,
        None => Class::Connect,
    }
}

/// The canonical CONNECT `40{json}` / `40/ns,{json}` (`{json}` optional): namespace and auth.
/// `None` for any other spelling the server would still read as a CONNECT (ack ids, whitespace
/// packet types, a missing type): those are refused rather than re-interpreted.
pub(super) fn parse_connect(msg: &[u8]) -> Option<(String, Option<Map<String, Value>>)> {
    let rest = msg.strip_prefix(b"40")?;
    let (namespace, data) = match rest.first() {
        Some(b'/') => match rest.iter().position(|b| *b == b',') {
            Some(c) => (&rest[..c], &rest[c + 1..]),
            None => (rest, &b""[..]),
        },
        _ => (&b"/"[..], rest),
    };
    let namespace = std::str::from_utf8(namespace).ok()?.to_string();
    let auth = match data.first() {
        None => Some(Map::new()),
        Some(b'{') => serde_json::from_slice::<Map<String, Value>>(data).ok(),
        Some(_) => return None,
    };
    Some((namespace, auth))
}
