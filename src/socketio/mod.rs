//! Socket.IO authentication inside the websocket stream (Engine.IO v4 / Socket.IO v5), on
//! routes with `socketio: true` (`docs/config.md`, "Socket.IO").
//!
//! [`scan`] reads the client's frames message by message and finds every CONNECT, whatever its
//! framing; `gate` authenticates each one (or stamps it with the identity that authenticated
//! the upgrade) and re-encodes it here with keygate's identity under `identity.socketio_key`, or
//! refuses it with `44{...}` and a close frame 1008.

mod connect;
pub(crate) mod gate;
pub mod scan;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::auth::Identity;
use crate::websocket::{encode, opcode, random_mask};

/// How the CONNECT packets of a websocket are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authorized {
    /// The upgrade carried no credential: each CONNECT's `auth` is verified.
    InStream,
    /// The upgrade was authenticated by a header or query credential: each CONNECT is stamped
    /// with that identity, re-verified under the rules in force.
    ByUpgrade,
}

fn prefix(namespace: &str) -> String {
    if namespace == "/" {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// The CONNECT to forward: the client's auth object with `auth[key]` replaced by the verified
/// identity (`{"user_id", "method", "credential", "claims"}`, plus `"assertion"`, the signed
/// identity assertion, when `identity.assertion` is configured), as one freshly masked text
/// frame.
pub fn connect_frame(
    namespace: &str,
    auth: &Map<String, Value>,
    key: &str,
    id: &Identity,
    assertion: Option<&str>,
) -> Bytes {
    let mut auth = auth.clone();
    let claims: Map<String, Value> = id
        .claims
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
        .collect();
    let mut identity = serde_json::json!({
        "user_id": id.user_id,
        "method": &*id.method,
        "credential": &*id.credential,
        "claims": claims,
    });
    if let (Some(a), Value::Object(m)) = (assertion, &mut identity) {
        m.insert("assertion".into(), a.into());
    }
    auth.insert(key.to_string(), identity);
    let payload = format!("40{}{}", prefix(namespace), Value::Object(auth));
    encode(opcode::TEXT, payload.as_bytes(), Some(random_mask()))
}

/// The refusal sent to the client: `44{"message":"unauthorized","data":{"reason":...}}`
/// (with the namespace prefix) and a close frame 1008 (policy violation, RFC 6455 §7.4.1).
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
    use crate::websocket::parse_header;

    #[test]
    fn refusal_is_44_then_close_1008() {
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
