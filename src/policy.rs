//! Who may pass a route (`docs/config.md`, "Routes" and "Modes"): alternatives in order, all-of
//! members whose user ids must agree, development mode's public-key shortcut, and `bind`.
//! Pure decisions over a matched route; matching lives in `crate::routes`.

use crate::auth::{Attempt, Authenticator, Identity, Kind, RequestParts};
use crate::config::Mode;
use crate::reason::Reason;
use crate::revocation::Revocations;
use crate::routes::{BindTarget, Route, RouteAuth};

/// One authenticator's result inside [`authorize`], for `keygate explain` and timing metrics.
#[derive(Debug)]
pub(crate) struct Step {
    /// Index of the alternative in the route's `auth` list.
    pub(crate) alternative: usize,
    /// Index of the authenticator in the config.
    pub(crate) authenticator: usize,
    /// Seconds the authenticator took.
    pub(crate) seconds: f64,
    /// `None` when it passed, the reason when it failed; `Some(MissingCredentials)` when its
    /// credential was absent.
    pub(crate) failed: Option<Reason>,
}

/// Receives every [`Step`] of an authorization (metrics, `keygate explain`).
pub(crate) trait Observer: Send {
    /// Called after each authenticator runs.
    fn step(&mut self, step: Step);

    /// Called after the route's `allow_if` is evaluated for alternative `alternative`: its
    /// value, or a value-free description of the evaluation error.
    fn condition(&mut self, _alternative: usize, _value: &Result<bool, String>) {}
}

impl Observer for () {
    fn step(&mut self, _: Step) {}
}

/// Runs a route's alternatives in order; the first that passes (satisfies `bind`, and is not
/// revoked) wins. `Ok(None)` for anonymous routes. When all fail, the most specific reason is
/// returned (`Reason::rank`), so a 503 is never hidden behind a 401.
pub(crate) async fn authorize(
    route: &Route,
    auths: &[Authenticator],
    mode: Mode,
    req: &RequestParts<'_>,
    revocations: &Revocations,
    observer: &mut dyn Observer,
) -> Result<Option<Identity>, Reason> {
    let alts = match &route.auth {
        RouteAuth::Anonymous => return Ok(None),
        RouteAuth::Alternatives(a) => a,
    };
    let mut worst: Option<Reason> = None;
    for (n, alt) in alts.iter().enumerate() {
        let outcome = match all_of(n, alt, auths, mode, req, observer).await {
            Ok(id) => id
                .check_forwardable()
                .and_then(|()| check_bind(route, &id, req))
                // issue 19: `bind_json` and `allow_if` (src/json_body.rs, src/condition/).
                .and_then(|()| check_bind_json(route, &id, req))
                .and_then(|()| not_revoked(revocations, &id))
                .and_then(|()| check_condition(route, &id, req, n, observer))
                .map(|()| id),
            Err(r) => Err(r),
        };
        match outcome {
            Ok(id) => return Ok(Some(id)),
            Err(r) if worst.is_none_or(|w| r.rank() > w.rank()) => worst = Some(r),
            Err(_) => {}
        }
    }
    Err(worst.unwrap_or(Reason::MissingCredentials))
}

/// One all-of alternative. In development mode, if a `public_key` member passes, members whose
/// credential is absent are skipped (present credentials are still verified).
async fn all_of(
    n: usize,
    alt: &[usize],
    auths: &[Authenticator],
    mode: Mode,
    req: &RequestParts<'_>,
    observer: &mut dyn Observer,
) -> Result<Identity, Reason> {
    let mut passed: Vec<Identity> = Vec::with_capacity(alt.len());
    let mut absent = false;
    let mut public_key_passed = false;
    for &i in alt {
        let started = std::time::Instant::now();
        let verdict = auths[i].verify(req).await;
        let failed = match &verdict {
            Attempt::Pass(_) => None,
            Attempt::Absent => Some(Reason::MissingCredentials),
            Attempt::Fail(r) => Some(*r),
        };
        observer.step(Step {
            alternative: n,
            authenticator: i,
            seconds: started.elapsed().as_secs_f64(),
            failed,
        });
        match verdict {
            Attempt::Fail(r) => return Err(r),
            Attempt::Absent => absent = true,
            Attempt::Pass(id) => {
                public_key_passed |= auths[i].kind() == Kind::PublicKey;
                passed.push(id);
            }
        }
    }
    if absent && !(mode == Mode::Development && public_key_passed) {
        return Err(Reason::MissingCredentials);
    }
    let mut it = passed.into_iter();
    let first = it.next().ok_or(Reason::MissingCredentials)?;
    it.try_fold(first, Identity::merge)
}

/// `credential_revoked` when a revocation in force matches the identity (checked after
/// verification, so a token served from the cache is checked too).
fn not_revoked(revocations: &Revocations, id: &Identity) -> Result<(), Reason> {
    let now = crate::metrics::unix_now() as i64;
    match revocations.matching(id, now) {
        Some(_) => Err(Reason::CredentialRevoked),
        None => Ok(()),
    }
}

/// `bind_json`: every value at the route's pointers is the user id (`identity_mismatch`
/// otherwise, and for an identity without a user id); the body must have been read and be
/// non-empty (`malformed_body`).
fn check_bind_json(route: &Route, id: &Identity, req: &RequestParts<'_>) -> Result<(), Reason> {
    if route.bind_json.is_empty() {
        return Ok(());
    }
    let body = req.body.ok_or(Reason::MalformedBody)?;
    let user = id.user_id.as_deref().ok_or(Reason::IdentityMismatch)?;
    if crate::json_body::all_equal(&route.bind_json, body, user) {
        Ok(())
    } else {
        Err(Reason::IdentityMismatch)
    }
}

/// `allow_if`: false, or an evaluation error, is `condition_failed`.
fn check_condition(
    route: &Route,
    id: &Identity,
    req: &RequestParts<'_>,
    alternative: usize,
    observer: &mut dyn Observer,
) -> Result<(), Reason> {
    let Some(c) = &route.condition else {
        return Ok(());
    };
    let value = c.evaluate(id, req);
    observer.condition(alternative, &value);
    match value {
        Ok(true) => Ok(()),
        _ => Err(Reason::ConditionFailed),
    }
}

/// `bind`: every bound path parameter equals the identity's user id or claim.
fn check_bind(route: &Route, id: &Identity, req: &RequestParts<'_>) -> Result<(), Reason> {
    for (target, param) in &route.bind {
        let want = req.param(param).ok_or(Reason::IdentityMismatch)?;
        let have = match target {
            BindTarget::UserId => id.user_id.as_deref(),
            BindTarget::Claim(c) => id.claim(c),
        };
        if have != Some(want) {
            return Err(Reason::IdentityMismatch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
