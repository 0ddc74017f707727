//! Fetching a JWK set over HTTP (reqwest, rustls): the set itself, or an OpenID Connect
//! discovery document (OIDC Discovery 1.0 §3: `issuer`, `jwks_uri`) first; `Cache-Control:
//! max-age` read from the answer; and [`parse_set`], the pure part, which turns a document into
//! a [`KeySet`] restricted to the authenticator's algorithms, skipping what keygate cannot use.

use std::sync::OnceLock;
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::Endpoint;
use crate::auth::jwt::keys::{decode_jwk, KeySet};

/// Largest document accepted.
const MAX_DOCUMENT: usize = 1 << 20;

/// Why a fetch failed; `result` is the `result` label of `keygate_jwks_fetches_total`.
#[derive(Debug)]
pub struct FetchError {
    /// `error`, `timeout`, `http_error`, `invalid` or `issuer_mismatch`.
    pub result: &'static str,
    /// What happened (no URL query, no key material).
    pub detail: String,
}

fn fetch_err(result: &'static str, detail: impl Into<String>) -> FetchError {
    FetchError {
        result,
        detail: detail.into(),
    }
}

/// A usable JWK set and what the fetch learned.
pub struct Fetched {
    /// The usable keys.
    pub set: KeySet,
    /// Keys skipped as unusable.
    pub skipped: usize,
    /// `Cache-Control: max-age` of the set, seconds.
    pub max_age: Option<u64>,
}

/// The HTTP side of one provider. Its client is built on first use (activation, or the first
/// fetch), never by the compile step.
pub struct Fetcher {
    client: OnceLock<Result<reqwest::Client, String>>,
    timeout: Duration,
    endpoint: Endpoint,
    issuers: Vec<String>,
    allowed: Vec<Algorithm>,
    name: String,
}

impl Fetcher {
    /// A fetcher whose client will use `timeout` for connect and the whole request, and follow
    /// three redirects. Builds nothing yet.
    pub fn new(
        name: &str,
        endpoint: Endpoint,
        issuers: Vec<String>,
        allowed: Vec<Algorithm>,
        timeout: Duration,
    ) -> Fetcher {
        Fetcher {
            client: OnceLock::new(),
            timeout,
            endpoint,
            issuers,
            allowed,
            name: name.to_string(),
        }
    }

    /// The HTTP client, built once (reqwest, rustls). Errors (`result` `error`) when it cannot
    /// be built, and on every later call.
    pub fn client(&self) -> Result<&reqwest::Client, FetchError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout)
                    .redirect(reqwest::redirect::Policy::limited(3))
                    .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(|e| fetch_err("error", e.clone()))
    }

    /// Whether `other` fetches the same keys for the same rules (a reload may then keep them).
    pub fn same_source(&self, other: &Fetcher) -> bool {
        self.endpoint == other.endpoint
            && self.allowed == other.allowed
            && self.issuers == other.issuers
    }

    /// Fetches (through discovery, for `openid_configuration_url`) and parses the set.
    pub async fn fetch(&self) -> Result<Fetched, FetchError> {
        let url = match &self.endpoint {
            Endpoint::Jwks(u) => u.clone(),
            Endpoint::Discovery(u) => {
                let (doc, _) = self.get_json(u).await?;
                if let Some(iss) = doc.get("issuer").and_then(Value::as_str) {
                    if !self.issuers.is_empty() && !self.issuers.iter().any(|i| i == iss) {
                        return Err(fetch_err(
                            "issuer_mismatch",
                            format!("discovery issuer {iss} is not in issuers"),
                        ));
                    }
                }
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| fetch_err("invalid", "discovery document has no jwks_uri"))?
                    .to_string()
            }
        };
        let (doc, max_age) = self.get_json(&url).await?;
        let (set, skipped) = parse_set(&doc, &self.allowed, &self.name)?;
        Ok(Fetched {
            set,
            skipped,
            max_age,
        })
    }

    async fn get_json(&self, url: &str) -> Result<(Value, Option<u64>), FetchError> {
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                fetch_err("timeout", "timed out")
            } else {
                fetch_err("error", e.without_url().to_string())
            }
        };
        let resp = self.client()?.get(url).send().await.map_err(failed)?;
        if !resp.status().is_success() {
            return Err(fetch_err(
                "http_error",
                format!("HTTP {}", resp.status().as_u16()),
            ));
        }
        let max_age = max_age(resp.headers());
        let bytes = resp.bytes().await.map_err(failed)?;
        if bytes.len() > MAX_DOCUMENT {
            return Err(fetch_err("invalid", "document over 1 MiB"));
        }
        let doc = serde_json::from_slice(&bytes)
            .map_err(|e| fetch_err("invalid", format!("not JSON ({:?})", e.classify())))?;
        Ok((doc, max_age))
    }
}

/// `Cache-Control: max-age=N` (RFC 9111 §5.2.2.1), seconds.
pub fn max_age(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|d| {
            d.trim()
                .strip_prefix("max-age=")
                .and_then(|n| n.trim().parse().ok())
        })
}

/// Parses a JWK set document (RFC 7517 §5) into the keys usable for `allowed`, and how many
/// were skipped: unsupported `kty` or curve, `use: enc`, no `kid` in a set of several, an `alg`
/// outside `allowed`, bad parameters. `invalid` when none is usable.
pub fn parse_set(
    doc: &Value,
    allowed: &[Algorithm],
    name: &str,
) -> Result<(KeySet, usize), FetchError> {
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| fetch_err("invalid", "no `keys` array"))?;
    let several = entries.len() > 1;
    let mut keys = Vec::new();
    let mut skipped = 0usize;
    for entry in entries {
        let usable = serde_json::from_value::<Jwk>(entry.clone())
            .ok()
            .and_then(|jwk| decode_jwk(&jwk).ok())
            .filter(|d| !(several && d.kid.is_none()))
            .and_then(|d| d.restrict(allowed, name));
        match usable {
            Some(k) => keys.push(k),
            None => skipped += 1,
        }
    }
    if keys.is_empty() {
        return Err(fetch_err(
            "invalid",
            format!("no usable keys ({skipped} skipped)"),
        ));
    }
    Ok((KeySet::new(keys), skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa(kid: Option<&str>, extra: Value) -> Value {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rsa.jwk.json"
        ))
        .unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let m = v.as_object_mut().unwrap();
        m.remove("kid");
        if let Some(k) = kid {
            m.insert("kid".into(), k.into());
        }
        for (k, x) in extra.as_object().unwrap() {
            m.insert(k.clone(), x.clone());
        }
        v
    }

    #[test]
    fn usable_keys_are_kept_and_the_rest_counted() {
        let doc = json!({"keys": [
            rsa(Some("a"), json!({"alg": "RS256", "use": "sig"})),
            rsa(Some("enc"), json!({"use": "enc"})),
            rsa(None, json!({})),
            rsa(Some("ps"), json!({"alg": "PS256"})),
            {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA", "kid": "k1"},
            {"kty": "oct", "kid": "junk"},
            "not an object",
        ]});
        let (set, skipped) = parse_set(&doc, &[Algorithm::RS256], "idp").unwrap();
        assert_eq!(set.len(), 1, "only `a` fits RS256");
        assert!(set.candidates(Some("a")).is_some());
        assert_eq!(skipped, 6);
    }

    #[test]
    fn a_single_key_may_lack_a_kid_and_nothing_usable_is_invalid() {
        let (set, _) = parse_set(
            &json!({"keys": [rsa(None, json!({}))]}),
            &[Algorithm::RS256],
            "idp",
        )
        .unwrap();
        assert_eq!(set.len(), 1);
        let e = parse_set(&json!({"keys": []}), &[Algorithm::RS256], "idp")
            .err()
            .unwrap();
        assert_eq!(e.result, "invalid");
        assert!(parse_set(&json!({"nope": 1}), &[Algorithm::RS256], "idp").is_err());
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut h = http::HeaderMap::new();
        h.append(
            "cache-control",
            "public, max-age=120, must-revalidate".parse().unwrap(),
        );
        assert_eq!(max_age(&h), Some(120));
        assert_eq!(max_age(&http::HeaderMap::new()), None);
    }
}
