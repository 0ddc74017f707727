//! Re-authorizing an open session against the rules and revocations in force, as its upgrade
//! (and each Socket.IO CONNECT) was authorized when it arrived: the route its path matches now,
//! that route's alternatives, `bind`, revocations. A removed key (`unknown_key`), a removed
//! authenticator or route, an expired or revoked credential fail it with their reason.
//!
//! A route in `enforce: observe` never fails it (observe mode records, it does not enforce).
//! Without `sessions.end_at_expiry` an expired credential does not fail it either; its recorded
//! identity is still checked against the revocations.

use std::sync::Arc;

use http::Method;

use super::{Grant, Kept};
use crate::auth::RequestParts;
use crate::config::Unmatched;
use crate::policy;
use crate::reason::Reason;
use crate::revocation::Revocations;
use crate::routes::Lookup;
use crate::ruleset::Ruleset;

/// Re-authorizes a session that opened with `kept` and holds `grants`; the reason it no longer
/// passes, if it does not. Awaits only when a JWK-set provider must be asked about a `kid`.
pub(crate) async fn session(
    rules: &Ruleset,
    revocations: &Revocations,
    kept: &Kept,
    grants: &[Arc<Grant>],
) -> Result<(), Reason> {
    let path = crate::path::check(&kept.path)?;
    let m = match rules.routes.find(&path, &Method::GET) {
        Lookup::Matched(m) => m,
        Lookup::NotFound if rules.unmatched == Unmatched::Anonymous => return Ok(()),
        Lookup::NotFound => return Err(Reason::NoRoute),
        Lookup::MethodNotAllowed { .. } => return Err(Reason::MethodNotAllowed),
    };
    let route = &rules.routes.routes[m.route];
    if route.observe {
        return Ok(());
    }
    for g in grants {
        if g.auth.is_some() && !route.socketio {
            return Err(Reason::NoRoute); // as the gate refuses a CONNECT there
        }
        let parts = RequestParts {
            headers: &kept.headers,
            query: kept.query.as_deref(),
            params: &m.params,
            socketio_auth: g.auth.as_ref(),
            max_token_bytes: rules.max_token_bytes,
            method: &Method::GET,
            body: None,
        };
        let auths = &rules.authenticators;
        match policy::authorize(route, auths, rules.mode, &parts, revocations, &mut ()).await {
            Ok(None) if g.auth.is_some() => return Err(Reason::MissingCredentials), // as the gate
            Ok(_) => {}
            // `end_at_expiry: false`: an expired credential keeps its session, unless revoked.
            Err(Reason::TokenExpired) if !rules.sessions.end_at_expiry => {
                let now = crate::metrics::unix_now() as i64;
                let id = g.identity.as_ref();
                if id.is_some_and(|id| revocations.matching(id, now).is_some()) {
                    return Err(Reason::CredentialRevoked);
                }
            }
            Err(r) => return Err(r),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::Revocation;

    const CONFIG: &str = r#"
version: 1
upstream: { url: "http://127.0.0.1:9" }
authenticators:
  events_key:
    type: api_key
    from: [{ header: x-api-key }]
    keys: [{ name: ci, sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" }]
routes:
  - { name: ws, path: /ws, auth: [events_key] }
  - { name: open, path: /open, auth: anonymous }
  - { name: watch, path: /watch, auth: [events_key], enforce: observe }
"#;

    fn rules(text: &str) -> Ruleset {
        crate::ruleset::load_str(text, "c.yaml").unwrap().rules
    }

    fn kept(path: &str, key: &str) -> Kept {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-api-key", key.parse().unwrap());
        Kept {
            path: path.into(),
            query: None,
            headers,
        }
    }

    fn upgrade() -> Vec<Arc<Grant>> {
        vec![Arc::new(Grant::upgrade(None))]
    }

    fn run(rules: &Ruleset, rev: &Revocations, k: &Kept) -> Result<(), Reason> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(session(rules, rev, k, &upgrade()))
    }

    #[test]
    fn passes_under_the_same_rules_and_fails_with_the_reason_they_give_now() {
        let r = rules(CONFIG);
        let none = Revocations::default();
        assert_eq!(run(&r, &none, &kept("/ws", "foo")), Ok(()));
        assert_eq!(
            run(&r, &none, &kept("/ws", "bar")),
            Err(Reason::InvalidApiKey)
        );
        let revoked = Revocations::new(
            vec![Revocation {
                credential: Some("events_key/ci".into()),
                ..Revocation::default()
            }],
            vec![],
        );
        assert_eq!(
            run(&r, &revoked, &kept("/ws", "foo")),
            Err(Reason::CredentialRevoked)
        );
        assert_eq!(run(&r, &none, &kept("/open", "")), Ok(()));
        assert_eq!(
            run(&r, &none, &kept("/watch", "bar")),
            Ok(()),
            "observe mode never ends a session"
        );
        let without_route = CONFIG.replace("  - { name: ws, path: /ws, auth: [events_key] }\n", "");
        assert_eq!(
            run(&rules(&without_route), &none, &kept("/ws", "foo")),
            Err(Reason::NoRoute)
        );
        let other_key = CONFIG.replace("2c26b46b68ff", "0c26b46b68ff");
        assert_eq!(
            run(&rules(&other_key), &none, &kept("/ws", "foo")),
            Err(Reason::InvalidApiKey),
            "the key was removed"
        );
    }
}
