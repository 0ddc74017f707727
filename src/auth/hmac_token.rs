//! `type: hmac_token`: a deterministic per-user token computed by the customer's backend and sent
//! beside the user id (Notifizz). Two schemes:
//! - `hmac_sha256`: lowercase hex of HMAC-SHA256(key = secret, message = user_id) (Notifizz docs);
//! - `sha256_concat`: lowercase hex of SHA-256(user_id || secret), what Notifizz's published PHP
//!   SDK (`generateHashedToken`) actually computes.
//!
//! The presented token is decoded per `encoding` (hex, either case; or standard base64 with or
//! without padding, as MagicBell's `x-magicbell-user-hmac`: its SDKs send
//! `Base64.encode64(HMAC-SHA256(secret, external id))`) and compared in constant time.

use std::sync::Arc;

use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Attempt, Extracted, Identity, RequestParts, Sources};
use crate::config::files::resolve;
use crate::config::{FieldError, HmacEncoding, HmacScheme, HmacTokenConfig};
use crate::reason::Reason;
use crate::secret::Secret;

/// A compiled `hmac_token` authenticator.
pub struct HmacToken {
    pub(super) name: String,
    secret: Secret,
    scheme: HmacScheme,
    encoding: HmacEncoding,
    token_from: Sources,
    user_id_from: Sources,
    method: Arc<str>,
    credential: Arc<str>,
}

/// The token for `user_id` under `scheme`: 32 bytes (hex-encode for the wire).
pub fn compute(scheme: HmacScheme, secret: &[u8], user_id: &[u8]) -> [u8; 32] {
    match scheme {
        HmacScheme::HmacSha256 => {
            let mut mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(secret)
                .expect("HMAC accepts keys of any length");
            mac.update(user_id);
            mac.finalize().into_bytes().into()
        }
        HmacScheme::Sha256Concat => {
            let mut h = Sha256::new();
            h.update(user_id);
            h.update(secret);
            h.finalize().into()
        }
    }
}

/// Standard base64 (RFC 4648 §4), `=` padding optional, canonical trailing bits required.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The 32 token bytes of `token` written in `encoding`; `None` for anything else.
fn decode(encoding: HmacEncoding, token: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    match encoding {
        HmacEncoding::Hex => hex::decode_to_slice(token.as_bytes(), &mut out).ok()?,
        HmacEncoding::Base64 => {
            use base64::Engine;
            let v = BASE64.decode(token.as_bytes()).ok()?;
            out = v.try_into().ok()?;
        }
    }
    Some(out)
}

impl HmacToken {
    /// Compiles `authenticators.<name>`; `secret` or `secret_file` is required.
    pub fn compile(name: &str, cfg: &HmacTokenConfig, path: &str) -> Result<Self, FieldError> {
        let secret = resolve(
            cfg.secret.as_ref().map(|s| &s.0),
            cfg.secret_file.as_deref(),
            path,
            "secret",
        )?
        .filter(|s| !s.expose().is_empty())
        .ok_or_else(|| {
            FieldError::new(
                format!("{path}.secret"),
                "a non-empty secret or secret_file is required",
            )
        })?;
        Ok(HmacToken {
            name: name.to_string(),
            secret,
            scheme: cfg.scheme,
            encoding: cfg.encoding,
            token_from: Sources::compile(&cfg.token_from.0, &format!("{path}.token_from"))?,
            user_id_from: Sources::compile(&cfg.user_id_from.0, &format!("{path}.user_id_from"))?,
            method: "hmac_token".into(),
            credential: name.into(),
        })
    }

    /// Where the token and the user id are read.
    pub(super) fn sources(&self) -> Vec<&Sources> {
        vec![&self.token_from, &self.user_id_from]
    }

    /// Verifies the request's user token against its user id.
    pub(super) fn verify(&self, req: &RequestParts<'_>) -> Attempt {
        let token = match self.token_from.extract(req) {
            Extracted::Absent => return Attempt::Absent,
            Extracted::Malformed => return Attempt::Fail(Reason::MalformedCredentials),
            Extracted::Present(t) => t,
        };
        let user_id = match self.user_id_from.extract(req) {
            Extracted::Present(u) => u,
            _ => return Attempt::Fail(Reason::MalformedCredentials),
        };
        let Some(presented) = decode(self.encoding, &token) else {
            return Attempt::Fail(Reason::MalformedCredentials);
        };
        let expected = compute(
            self.scheme,
            self.secret.expose().as_bytes(),
            user_id.as_bytes(),
        );
        if bool::from(expected.ct_eq(&presented)) {
            Attempt::Pass(Identity {
                user_id: Some(user_id.into_owned()),
                ..Identity::app(self.method.clone(), self.credential.clone())
            })
        } else {
            Attempt::Fail(Reason::InvalidHmac)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_decode_exactly_32_bytes() {
        let mac = compute(
            HmacScheme::HmacSha256,
            b"Jefe",
            b"what do ya want for nothing?",
        );
        use base64::Engine;
        let padded = base64::engine::general_purpose::STANDARD.encode(mac);
        assert_eq!(padded.len(), 44);
        assert_eq!(decode(HmacEncoding::Base64, &padded), Some(mac));
        assert_eq!(
            decode(HmacEncoding::Base64, padded.trim_end_matches('=')),
            Some(mac)
        );
        let url = base64::engine::general_purpose::URL_SAFE.encode([0xfb; 32]);
        assert_eq!(
            decode(HmacEncoding::Base64, &url),
            None,
            "URL-safe alphabet is refused"
        );
        assert_eq!(decode(HmacEncoding::Base64, &padded[..40]), None);
        assert_eq!(decode(HmacEncoding::Hex, &padded), None);
        assert_eq!(
            decode(HmacEncoding::Hex, &hex::encode(mac).to_uppercase()),
            Some(mac)
        );
        assert_eq!(
            decode(HmacEncoding::Base64, &hex::encode(mac)),
            None,
            "64 chars is 48 bytes"
        );
    }

    #[test]
    fn known_answers() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = compute(
            HmacScheme::HmacSha256,
            b"Jefe",
            b"what do ya want for nothing?",
        );
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // sha256("abc") with an empty secret is the FIPS 180-2 "abc" vector.
        let h = compute(HmacScheme::Sha256Concat, b"", b"abc");
        assert_eq!(
            hex::encode(h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(compute(HmacScheme::Sha256Concat, b"c", b"ab"), h);
    }
}
