//! JWT verification keys: decoding PEM (SPKI / PKCS#1) and JWK (RFC 7517) public keys, telling
//! their type (which fixes the algorithms they may verify), and the immutable [`KeySet`] a
//! verifier reads: static keys from the config, or a snapshot of a JWK set.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The kind of a verification key, which fixes the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA (RS*, PS*).
    Rsa,
    /// EC P-256 (ES256).
    EcP256,
    /// EC P-384 (ES384).
    EcP384,
    /// Ed25519 (EdDSA).
    Ed25519,
    /// A shared secret (HS*).
    Hmac,
}

impl KeyType {
    /// Algorithms a key of this type can verify (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            KeyType::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            KeyType::EcP256 => &[ES256],
            KeyType::EcP384 => &[ES384],
            KeyType::Ed25519 => &[EdDSA],
            KeyType::Hmac => &[HS256, HS384, HS512],
        }
    }
}

/// One usable key.
pub struct VerifyKey {
    /// `kid` (RFC 7515 §4.1.4), if the key has one.
    pub kid: Option<String>,
    /// The decoded key.
    pub key: DecodingKey,
    /// The authenticator's `algorithms` that this key's type (and JWK `alg`) allows; never empty.
    pub algs: Vec<Algorithm>,
    /// SHA-256 of the key material: tells a rotated key from one that kept its `kid`.
    pub fingerprint: [u8; 32],
    /// `authenticator/kid` (or the authenticator name), for the credential header.
    pub credential: Arc<str>,
}

/// An immutable set of keys, indexed by `kid`.
pub struct KeySet {
    keys: Vec<VerifyKey>,
    by_kid: HashMap<String, Vec<usize>>,
    /// `0..keys.len()`: the candidates for a token without `kid`, in order.
    all: Vec<usize>,
}

impl KeySet {
    /// Indexes `keys` (order is kept: kid-less tokens try keys in this order).
    pub fn new(keys: Vec<VerifyKey>) -> KeySet {
        let mut by_kid: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(kid) = &k.kid {
                by_kid.entry(kid.clone()).or_default().push(i);
            }
        }
        KeySet {
            all: (0..keys.len()).collect(),
            keys,
            by_kid,
        }
    }

    /// Candidate keys for a token: those with its `kid`, or all keys when it has none.
    /// `None` when the `kid` is unknown.
    pub fn candidates(&self, kid: Option<&str>) -> Option<impl Iterator<Item = &VerifyKey>> {
        let idx: &[usize] = match kid {
            Some(k) => self.by_kid.get(k)?,
            None => &self.all,
        };
        Some(idx.iter().map(|&i| &self.keys[i]))
    }

    /// Whether the key that verified something (by `kid` and fingerprint) is still here.
    pub fn contains(&self, kid: Option<&str>, fingerprint: &[u8; 32]) -> bool {
        self.candidates(kid)
            .is_some_and(|mut c| c.any(|k| &k.fingerprint == fingerprint))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A decoded key before it is restricted to an authenticator's algorithms.
pub struct Decoded {
    /// `kid`, from the config or the JWK.
    pub kid: Option<String>,
    /// The decoded key.
    pub key: DecodingKey,
    /// Its type, which fixes the algorithms it may verify.
    pub ty: KeyType,
    /// The JWK's `alg`, which restricts the key to that one algorithm.
    pub alg: Option<Algorithm>,
    /// SHA-256 of the key material.
    pub fingerprint: [u8; 32],
}

impl Decoded {
    /// Restricts the key to `allowed` (the authenticator's `algorithms`); `None` if it can
    /// verify none of them.
    pub fn restrict(self, allowed: &[Algorithm], credential_base: &str) -> Option<VerifyKey> {
        let algs: Vec<Algorithm> = allowed
            .iter()
            .copied()
            .filter(|a| self.ty.algorithms().contains(a) && self.alg.is_none_or(|j| j == *a))
            .collect();
        if algs.is_empty() {
            return None;
        }
        let credential = match &self.kid {
            Some(k) => format!("{credential_base}/{k}").into(),
            None => credential_base.into(),
        };
        Some(VerifyKey {
            kid: self.kid,
            key: self.key,
            algs,
            fingerprint: self.fingerprint,
            credential,
        })
    }
}

const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Decodes a public key PEM (`PUBLIC KEY` SPKI or `RSA PUBLIC KEY` PKCS#1) and tells its type
/// from the SPKI algorithm OID (RFC 5480, RFC 8410). Errors start with `bad PEM`.
pub fn decode_pem(text: &str, kid: Option<String>) -> Result<Decoded, String> {
    let block = pem::parse(text.trim()).map_err(|e| format!("bad PEM: {e}"))?;
    let der = block.contents();
    let ty = match block.tag() {
        "RSA PUBLIC KEY" => KeyType::Rsa,
        "PUBLIC KEY" if contains(der, OID_RSA) => KeyType::Rsa,
        "PUBLIC KEY" if contains(der, OID_EC) && contains(der, OID_P256) => KeyType::EcP256,
        "PUBLIC KEY" if contains(der, OID_EC) && contains(der, OID_P384) => KeyType::EcP384,
        "PUBLIC KEY" if contains(der, OID_ED25519) => KeyType::Ed25519,
        "PUBLIC KEY" => return Err("bad PEM: unsupported public key type".into()),
        other => {
            return Err(format!(
                "bad PEM: expected a PUBLIC KEY block, found {other}"
            ))
        }
    };
    let bytes = text.trim().as_bytes();
    let key = match ty {
        KeyType::Rsa => DecodingKey::from_rsa_pem(bytes),
        KeyType::EcP256 | KeyType::EcP384 => DecodingKey::from_ec_pem(bytes),
        KeyType::Ed25519 => DecodingKey::from_ed_pem(bytes),
        KeyType::Hmac => unreachable!("PEM is never an HMAC key"),
    }
    .map_err(|e| format!("bad PEM: {e}"))?;
    Ok(Decoded {
        kid,
        key,
        ty,
        alg: None,
        fingerprint: crate::secret::sha256(der),
    })
}

/// An HMAC key (HS256/384/512).
pub fn decode_secret(secret: &[u8], kid: Option<String>) -> Decoded {
    Decoded {
        kid,
        key: DecodingKey::from_secret(secret),
        ty: KeyType::Hmac,
        alg: None,
        fingerprint: crate::secret::sha256(secret),
    }
}

/// Decodes a public JWK and tells its type; `alg`, when present, must fit the type and then
/// restricts the key to it. Refuses `use: enc` keys.
pub fn decode_jwk(jwk: &Jwk) -> Result<Decoded, String> {
    if jwk.common.public_key_use == Some(jsonwebtoken::jwk::PublicKeyUse::Encryption) {
        return Err("key is for encryption (use: enc)".into());
    }
    let ty = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyType::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyType::EcP256,
            EllipticCurve::P384 => KeyType::EcP384,
            _ => return Err("unsupported EC curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            KeyType::Ed25519
        }
        AlgorithmParameters::OctetKey(_) => KeyType::Hmac,
        _ => return Err("unsupported key type".into()),
    };
    let alg = match &jwk.common.key_algorithm {
        Some(a) => Some(
            a.to_string()
                .parse::<Algorithm>()
                .map_err(|_| format!("unsupported alg {a}"))?,
        ),
        None => None,
    };
    if alg.is_some_and(|a| !ty.algorithms().contains(&a)) {
        return Err("alg does not fit the key type".into());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("bad key parameters: {e}"))?;
    let params = serde_json::to_vec(&jwk.algorithm).unwrap_or_default();
    Ok(Decoded {
        kid: jwk.common.key_id.clone(),
        key,
        ty,
        alg,
        fingerprint: crate::secret::sha256(&params),
    })
}
