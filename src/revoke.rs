//! `keygate revoke` (`docs/config.md`, "CLI" and "Shared state (Redis)"): adds, lists and
//! deletes the revocations kept in Redis under the config's `shared_state`. Every replica using
//! that Redis and `key_prefix` applies a change within a second (pub/sub, `crate::shared`).
//!
//! Exit codes: 0 done; 1 the config does not load, Redis cannot be reached, or `--delete`
//! names no entry; 2 bad arguments, or no `shared_state` in the config (revocations then come
//! from `revocations.file`, one per replica).

use std::path::Path;
use std::time::Duration;

use crate::revocation::{parse_instant, Revocation};
use crate::shared::redis;

/// What `keygate revoke` does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Add this entry (`--sub S [--issued-before T] | --jti J | --credential A/N`, `--ttl`).
    Add(Revocation),
    /// Print every entry in force, one `ID JSON` line each (`--list`).
    List,
    /// Remove the entry with this id (`--delete ID`).
    Delete(String),
}

/// The entry the flags describe. `issued_before` is RFC 3339; `ttl` a duration (`900`,
/// `15m`, `24h`, `7d`) after which the entry is ignored (`expires_at`).
pub fn entry(
    sub: Option<String>,
    issued_before: Option<&str>,
    jti: Option<String>,
    credential: Option<String>,
    ttl: Option<&str>,
) -> Result<Revocation, String> {
    let expires_at = match ttl {
        Some(t) => {
            let secs = crate::token::parse_ttl(t)?;
            if secs == 0 {
                return Err("--ttl must be more than 0".into());
            }
            Some(crate::metrics::unix_now() as i64 + secs as i64)
        }
        None => None,
    };
    let entry = Revocation {
        sub,
        issued_before: issued_before.map(parse_instant).transpose()?,
        jti,
        credential,
        expires_at,
    };
    entry.validate()?;
    Ok(entry)
}

/// Runs `action` against the shared state of the config at `path`: the text to print, or
/// the exit code and the message (which never contains the Redis URL's password).
pub fn run(path: &Path, action: Action) -> Result<String, (u8, String)> {
    let loaded = crate::ruleset::load(path).map_err(|e| (1, e.to_string()))?;
    let Some(settings) = loaded.settings.shared_state else {
        return Err((
            2,
            format!(
                "{}: no `shared_state` in the config: keygate revoke stores revocations in Redis; \
                 without it, list them in `revocations.file` (read by every replica)",
                path.display()
            ),
        ));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (1, e.to_string()))?;
    let scrub = |e: &dyn std::fmt::Display| (1, settings.scrub(&format!("Redis: {e}")));
    rt.block_on(async {
        let client = ::redis::Client::open(settings.url.expose()).map_err(|e| scrub(&e))?;
        let connect = client.get_multiplexed_async_connection();
        let mut c = match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(c) => c.map_err(|e| scrub(&e))?,
            Err(_) => {
                return Err(scrub(&format!(
                    "{} did not answer within 5 s",
                    settings.redacted
                )))
            }
        };
        let prefix = &settings.prefix;
        match action {
            Action::Add(e) => {
                let id = redis::add_revocation(&mut c, prefix, &e)
                    .await
                    .map_err(|e| scrub(&e))?;
                Ok(format!("revoked {id} {}\n", json(&e)))
            }
            Action::List => {
                let now = crate::metrics::unix_now() as i64;
                let all = redis::load_revocations(&mut c, prefix)
                    .await
                    .map_err(|e| scrub(&e))?;
                let mut out = String::new();
                for (id, e) in all.iter().filter(|(_, e)| e.in_force(now)) {
                    out += &format!("{id} {}\n", json(e));
                }
                Ok(out)
            }
            Action::Delete(id) => match redis::delete_revocation(&mut c, prefix, &id).await {
                Ok(true) => Ok(format!("deleted {id}\n")),
                Ok(false) => Err((1, format!("no revocation with id {id} (see --list)"))),
                Err(e) => Err(scrub(&e)),
            },
        }
    })
}

fn json(e: &Revocation) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_valid_entries_only() {
        let e = entry(Some("user-1".into()), None, None, None, Some("1h")).unwrap();
        let now = crate::metrics::unix_now() as i64;
        assert!(e
            .expires_at
            .is_some_and(|t| (now + 3590..=now + 3610).contains(&t)));
        let e = entry(
            Some("u".into()),
            Some("2026-12-07T10:00:00Z"),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            e.issued_before,
            Some(parse_instant("2026-12-07T10:00:00Z").unwrap())
        );
        assert!(entry(
            None,
            Some("2026-12-07T10:00:00Z"),
            Some("j".into()),
            None,
            None
        )
        .is_err());
        assert!(entry(None, None, None, None, None).is_err());
        assert!(entry(Some("u".into()), Some("yesterday"), None, None, None).is_err());
        assert!(entry(Some("u".into()), None, None, None, Some("soon")).is_err());
        assert!(entry(Some("u".into()), None, None, None, Some("0")).is_err());
    }
}
