//! JWT verification keys: decoding PEM (SPKI / PKCS#1) and JWK (RFC 7517) public keys, telling
//! their type (which fixes the algorithms they may verify), and the immutable [`KeySet`] a
//! verifier reads: static keys from the config, or a snapshot of a JWK set.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use spki::ObjectIdentifier;

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

impl std::fmt::Display for KeyType {
    /// The name an operator knows the key by: `RSA`, `EC P-256`, `EC P-384`, `Ed25519`, `HMAC`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "Ed25519",
            KeyType::Hmac => "HMAC",
        })
    }
}

/// One usable key.
pub struct VerifyKey {
    /// `kid` (RFC 7515 §4.1.4), if the key has one.
    pub kid: Option<Arc<str>>,
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
                by_kid.entry(kid.to_string()).or_default().push(i);
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
            kid: self.kid.map(Arc::from),
            key: self.key,
            algs,
            fingerprint: self.fingerprint,
            credential,
        })
    }
}

/// rsaEncryption (RFC 8017 Appendix C).
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480 §2.1.1).
pub(crate) const EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 / P-256 (RFC 5480 §2.1.1.1).
pub(crate) const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 / P-384 (RFC 5480 §2.1.1.1).
pub(crate) const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// id-Ed25519 (RFC 8410 §3).
pub(crate) const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The key type named by an algorithm identifier (and, for EC, its curve parameter).
pub(crate) fn key_type(alg: &spki::AlgorithmIdentifierRef<'_>) -> Result<KeyType, String> {
    match alg.oid {
        RSA_ENCRYPTION => Ok(KeyType::Rsa),
        EC_PUBLIC_KEY => match alg.parameters_oid() {
            Ok(P256) => Ok(KeyType::EcP256),
            Ok(P384) => Ok(KeyType::EcP384),
            _ => Err("unsupported EC curve (P-256 and P-384 are)".into()),
        },
        ED25519 => Ok(KeyType::Ed25519),
        oid => Err(format!("unsupported public key algorithm {oid}")),
    }
}

/// Decodes a public key PEM (`PUBLIC KEY` SPKI, RFC 5280 §4.1.2.7, or `RSA PUBLIC KEY` PKCS#1)
/// and tells its type from the SPKI algorithm identifier (RFC 5480, RFC 8410), parsed with
/// the `spki` crate. Errors start with `bad PEM`.
pub fn decode_pem(text: &str, kid: Option<String>) -> Result<Decoded, String> {
    let block = pem::parse(text.trim()).map_err(|e| format!("bad PEM: {e}"))?;
    let der = block.contents();
    let ty = match block.tag() {
        "RSA PUBLIC KEY" => KeyType::Rsa,
        "PUBLIC KEY" => {
            let info = spki::SubjectPublicKeyInfoRef::try_from(der)
                .map_err(|e| format!("bad PEM: not a SubjectPublicKeyInfo ({e})"))?;
            key_type(&info.algorithm).map_err(|e| format!("bad PEM: {e}"))?
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn public_key_types_come_from_the_spki_algorithm() {
        for (file, ty) in [
            ("rsa.pub", KeyType::Rsa),
            ("ec256.pub", KeyType::EcP256),
            ("ec384.pub", KeyType::EcP384),
            ("ed25519.pub", KeyType::Ed25519),
        ] {
            assert_eq!(decode_pem(&fixture(file), None).unwrap().ty, ty, "{file}");
        }
        // secp256k1 is an EC key keygate cannot verify with.
        let k1 = "-----BEGIN PUBLIC KEY-----\nMFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEqz23eWKucj5GU38UvAAeJuCu5Yie+WWX\nooNRbdERQSjpUSetR5AQ5RSGCw0uLo7j+xgMLy8ZxtTQOMB3TJr7PA==\n-----END PUBLIC KEY-----\n";
        let e = decode_pem(k1, None).err().unwrap();
        assert!(e.contains("unsupported EC curve"), "{e}");
        let e = decode_pem(&fixture("rsa.key"), None).err().unwrap();
        assert!(e.contains("found PRIVATE KEY"), "{e}");
        let garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(decode_pem(garbage, None)
            .err()
            .unwrap()
            .starts_with("bad PEM"));
    }

    #[test]
    fn private_keys_choose_their_algorithm() {
        use jsonwebtoken::Algorithm::*;
        for (file, alg) in [
            ("rsa.key", RS256),
            ("ec256.key", ES256),
            ("ec384.key", ES384),
            ("ed25519.key", EdDSA),
        ] {
            assert_eq!(
                crate::token::signing_key(&fixture(file)).unwrap().1,
                alg,
                "{file}"
            );
        }
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEILI3kdD+fCG+k2CD7zSinsYBA+cW3uji0xfJlD+AgREJoAoGCCqGSM49\nAwEHoUQDQgAELOqLGTdJYFSvd3M0xKLjZvdAkgivmaQpzKS9rBGwNWE72k3A+JuG\n+EHxwKe3pcxRSfWpRavYAghfhIZ0eVFBIw==\n-----END EC PRIVATE KEY-----\n";
        let (k, alg) = crate::token::signing_key(sec1).unwrap();
        assert_eq!(alg, ES256);
        let claims =
            serde_json::Map::from_iter([("sub".to_string(), serde_json::Value::from("u"))]);
        let t = crate::token::sign(&k, alg, None, &claims).unwrap();
        assert_eq!(t.split('.').count(), 3, "a SEC1 key signs");
    }
}
