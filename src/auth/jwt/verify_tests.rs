//! In-process tests of pure JWT verification: every attack family of `tests/it/jwt_attacks.rs`,
//! without a proxy. Tokens are signed with the fixture keys in `tests/fixtures/`.

use super::*;
use crate::auth::jwt::Jwt;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn jwt(yaml: &str) -> Jwt {
    let yaml = yaml
        .replace("RSA_PUB", &fixture("rsa.pub"))
        .replace("EC_PUB", &fixture("ec256.pub"));
    let cfg: crate::config::JwtConfig = crate::config::yaml::from_str(&yaml, "test").unwrap();
    let forward: Arc<[Arc<str>]> =
        vec![Arc::<str>::from("workspace_id"), Arc::<str>::from("org")].into();
    Jwt::compile("j", &cfg, forward, false, None, "authenticators.j").unwrap()
}

const BASE: &str = "from: {header: authorization, scheme: Bearer}\nalgorithms: [RS256, ES256]\nkeys: [{kid: k1, pem_file: RSA_PUB}, {kid: k2, pem_file: EC_PUB}]\n";

fn sign(key: &str, alg: &str, kid: Option<&str>, claims: Value) -> String {
    let text = std::fs::read_to_string(fixture(key)).unwrap();
    let (k, _) = crate::token::signing_key(&text).unwrap();
    crate::token::sign(&k, alg.parse().unwrap(), kid, claims.as_object().unwrap()).unwrap()
}

fn now() -> i64 {
    crate::token::now() as i64
}

fn claims() -> Value {
    json!({"sub": "u1", "iat": now(), "exp": now() + 600, "workspace_id": "W1"})
}

fn check(j: &Jwt, token: &str) -> Result<Identity, Reason> {
    let h = header(token)?;
    let set = j.keys.current()?;
    verify(&set, &h, token, &j.rules).map(|(id, _, _)| id)
}

fn raw(header: Value, payload: Value, sig: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{sig}", enc(&header), enc(&payload))
}

#[test]
fn a_valid_token_yields_its_identity_and_captured_claims() {
    let j = jwt(BASE);
    let id = check(&j, &sign("rsa.key", "RS256", Some("k1"), claims())).unwrap();
    assert_eq!(id.user_id.as_deref(), Some("u1"));
    assert_eq!(&*id.credential, "j/k1");
    assert_eq!(&*id.method, "jwt");
    assert_eq!(id.claim("workspace_id"), Some("W1"));
    // No kid: every key whose type fits the alg is tried, in order.
    let id = check(&j, &sign("rsa.key", "RS256", None, claims())).unwrap();
    assert_eq!(&*id.credential, "j/k1");
    // A numeric sub is forwarded in its JSON spelling; structured claims as JSON.
    let mut c = claims();
    c["sub"] = json!(42);
    c["org"] = json!({"id": 7});
    let id = check(&j, &sign("rsa.key", "RS256", None, c)).unwrap();
    assert_eq!(id.user_id.as_deref(), Some("42"));
    assert_eq!(id.claim("org"), Some(r#"{"id":7}"#));
}

#[test]
fn algorithm_attacks_are_refused() {
    let j = jwt(BASE);
    let none = raw(json!({"alg": "none", "typ": "JWT"}), claims(), "");
    assert_eq!(check(&j, &none), Err(Reason::AlgorithmNotAllowed));
    assert_eq!(
        check(&j, &raw(json!({"alg": "HS1"}), claims(), "x")),
        Err(Reason::AlgorithmNotAllowed)
    );
    // RS/HS confusion: an HS256 token keyed with the RSA public key's PEM text.
    let pem = std::fs::read(fixture("rsa.pub")).unwrap();
    let k = jsonwebtoken::EncodingKey::from_secret(&pem);
    let hs = crate::token::sign(
        &k,
        Algorithm::HS256,
        Some("k1"),
        claims().as_object().unwrap(),
    )
    .unwrap();
    assert_eq!(
        check(&j, &hs),
        Err(Reason::AlgorithmNotAllowed),
        "HS256 is not allowed"
    );
    let both = jwt(&BASE.replace("[RS256, ES256]", "[RS256, ES256, HS256]"));
    assert_eq!(
        check(&both, &hs),
        Err(Reason::AlgorithmNotAllowed),
        "no HMAC key exists"
    );
    // Key-type confusion: an ES256 token naming the RSA key's kid.
    let es = sign("ec256.key", "ES256", Some("k1"), claims());
    assert_eq!(check(&j, &es), Err(Reason::AlgorithmNotAllowed));
    assert!(check(&j, &sign("ec256.key", "ES256", Some("k2"), claims())).is_ok());
    let rs_only = jwt(&BASE
        .replace("[RS256, ES256]", "[RS256]")
        .replace(", {kid: k2, pem_file: EC_PUB}", ""));
    assert_eq!(
        check(&rs_only, &sign("ec256.key", "ES256", None, claims())),
        Err(Reason::AlgorithmNotAllowed),
        "ES256 not allowed"
    );
}

#[test]
fn keys_and_signatures() {
    let j = jwt(BASE);
    assert_eq!(
        check(&j, &sign("rsa_other.key", "RS256", Some("k1"), claims())),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        check(&j, &sign("rsa.key", "RS256", Some("k9"), claims())),
        Err(Reason::UnknownKey)
    );
    // An embedded `jwk` / `jku` is never used: the attacker's own key does not verify.
    let mut h = jsonwebtoken::Header::new(Algorithm::RS256);
    h.jku = Some("https://evil.test/jwks".into());
    h.kid = Some("k1".into());
    let text = std::fs::read_to_string(fixture("rsa_other.key")).unwrap();
    let (k, _) = crate::token::signing_key(&text).unwrap();
    let t = jsonwebtoken::encode(&h, &claims(), &k).unwrap();
    assert_eq!(check(&j, &t), Err(Reason::InvalidSignature));
    // A tampered signature (a character in the middle, where every bit counts).
    let good = sign("rsa.key", "RS256", Some("k1"), claims());
    let mid = good.rfind('.').unwrap() + 20;
    let flipped = if &good[mid..=mid] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &good[..mid], &good[mid + 1..]);
    assert_eq!(check(&j, &tampered), Err(Reason::InvalidSignature));
    let segs: Vec<&str> = good.split('.').collect();
    assert_eq!(
        check(&j, &format!("{}.{}", segs[0], segs[1])),
        Err(Reason::MalformedCredentials)
    );
    assert_eq!(check(&j, "%%%.a.b"), Err(Reason::MalformedCredentials));
    let crit = raw(
        json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]}),
        claims(),
        "sig",
    );
    assert_eq!(check(&j, &crit), Err(Reason::MalformedCredentials));
}

#[test]
fn identity_carries_valid_until_iat_and_jti_for_sessions_and_revocations() {
    let j = jwt(&format!("{BASE}leeway_seconds: 5\n"));
    let mut c = claims();
    c["jti"] = json!("t-42");
    let id = check(&j, &sign("rsa.key", "RS256", None, c.clone())).unwrap();
    assert_eq!(
        id.valid_until,
        Some(c["exp"].as_u64().unwrap() + 5),
        "exp + leeway"
    );
    assert_eq!(id.issued_at, c["iat"].as_u64());
    assert_eq!(id.jti.as_deref(), Some("t-42"));
    let mut bare = claims();
    bare.as_object_mut().unwrap().remove("iat");
    let id = check(&j, &sign("rsa.key", "RS256", None, bare)).unwrap();
    assert_eq!((id.issued_at, id.jti), (None, None));
}

#[test]
fn time_claims_with_leeway() {
    let j = jwt(&format!("{BASE}leeway_seconds: 5\n"));
    let at = |exp: i64, nbf: Option<i64>| {
        let mut c = claims();
        c["exp"] = json!(exp);
        if let Some(n) = nbf {
            c["nbf"] = json!(n);
        }
        check(&j, &sign("rsa.key", "RS256", None, c))
    };
    assert_eq!(at(now() - 60, None), Err(Reason::TokenExpired));
    assert!(at(now() - 2, None).is_ok(), "within the leeway");
    assert_eq!(
        at(now() - 5, None),
        Err(Reason::TokenExpired),
        "valid only before exp + leeway (RFC 7519 4.1.4), when open sessions are closed"
    );
    assert!(at(now() - 4, None).is_ok());
    assert_eq!(
        at(now() + 600, Some(now() + 60)),
        Err(Reason::TokenNotYetValid)
    );
    assert!(at(now() + 600, Some(now() + 2)).is_ok());
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(&j, &sign("rsa.key", "RS256", None, no_exp.clone())),
        Err(Reason::MissingClaim),
        "exp is required by default"
    );
    let lax = jwt(&format!("{BASE}require: [sub]\n"));
    assert!(check(&lax, &sign("rsa.key", "RS256", None, no_exp)).is_ok());
    let mut string_exp = claims();
    string_exp["exp"] = json!("9999999999");
    assert_eq!(
        check(&j, &sign("rsa.key", "RS256", None, string_exp)),
        Err(Reason::MalformedCredentials)
    );
}

#[test]
fn issuer_audience_and_claim_rules() {
    let j = jwt(&format!(
        "{BASE}issuers: [https://iss.test]\naudiences: [a1, a2]\nrequire: [sub, iat, exp]\nmax_lifetime_seconds: 900\nclaims: {{type: customer, workspace_id: [W1, W2]}}\n"
    ));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        c["iss"] = json!("https://iss.test");
        c["aud"] = json!(["x", "a2"]);
        c["type"] = json!("customer");
        f(&mut c);
        check(&j, &sign("rsa.key", "RS256", None, c))
    };
    assert!(with(&|_| {}).is_ok());
    assert_eq!(
        with(&|c| c["iss"] = json!("https://evil.test")),
        Err(Reason::InvalidIssuer)
    );
    assert_eq!(
        with(&|c| c["aud"] = json!("other")),
        Err(Reason::InvalidAudience)
    );
    assert_eq!(
        with(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        }),
        Err(Reason::MissingClaim)
    );
    assert_eq!(
        with(&|c| {
            c.as_object_mut().unwrap().remove("iat");
        }),
        Err(Reason::MissingClaim)
    );
    assert_eq!(
        with(&|c| c["type"] = json!("admin")),
        Err(Reason::ClaimMismatch)
    );
    assert_eq!(
        with(&|c| c["workspace_id"] = json!("W3")),
        Err(Reason::ClaimMismatch)
    );
    assert_eq!(
        with(&|c| c["type"] = json!(["customer"])),
        Err(Reason::ClaimMismatch)
    );
    assert_eq!(
        with(&|c| {
            c.as_object_mut().unwrap().remove("type");
        }),
        Err(Reason::MissingClaim)
    );
    assert_eq!(
        with(&|c| c["exp"] = json!(now() + 3600)),
        Err(Reason::ClaimMismatch),
        "longer than 15 minutes"
    );
    assert_eq!(
        with(&|c| {
            c.as_object_mut().unwrap().remove("sub");
        }),
        Err(Reason::MissingClaim)
    );
    assert_eq!(with(&|c| c["sub"] = json!("")), Err(Reason::MissingClaim));
}
