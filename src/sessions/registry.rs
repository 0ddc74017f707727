//! The session registry: one task per process owning every open session (`docs/config.md`,
//! "Sessions and revocation"). Per session it holds one map entry and at most one entry in a
//! deadline-ordered `BTreeSet` (the earlier of `valid_until` and `opened + max_lifetime`); one
//! sleep covers the earliest deadline and the next re-authorization round.
//!
//! A round re-authorizes every open session (`recheck`) in a task of its own, against the rules
//! and revocations in force when it starts, so a slow JWK-set fetch never delays an expiry; it
//! runs every `sessions.recheck_seconds`, and at once after a `signal::poke` (pokes during a
//! round start one more when it ends). Each close is counted in
//! `keygate_sessions_closed_total{route,reason}`, written as one access-log line
//! (`outcome: closed`) and logged at info.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{recheck, signal, Command, Entry, Grant, Kept, Why};
use crate::metrics::metrics;
use crate::reason::Reason;
use crate::ruleset::SessionRules;
use crate::state::State;

/// Sessions by id, and their deadlines.
#[derive(Default)]
struct Registry {
    entries: HashMap<u64, Entry>,
    deadlines: BTreeSet<(Instant, u64)>,
}

/// Runs the registry of `state.sessions` until the process exits (spawned once, on the control
/// runtime).
pub(crate) async fn run(state: Arc<State>) {
    let Some(mut inbox) = state.sessions.take_inbox() else {
        return; // already running
    };
    let mut reg = Registry::default();
    let mut rules = state.rules.load_full();
    let mut next_round = Instant::now() + rules.sessions.recheck;
    let mut round: Option<JoinHandle<Vec<(u64, Reason)>>> = None;
    let mut again = false; // poked while a round ran
    loop {
        let wake = reg
            .deadlines
            .first()
            .map_or(next_round, |(t, _)| (*t).min(next_round));
        let start_round = tokio::select! {
            cmd = inbox.recv() => {
                let Some(cmd) = cmd else { return };
                reg.apply(cmd, &rules.sessions, &state);
                // Take whatever else queued meanwhile before sleeping again.
                while let Ok(cmd) = inbox.try_recv() {
                    reg.apply(cmd, &rules.sessions, &state);
                }
                false
            }
            () = tokio::time::sleep_until(wake.into()) => {
                reg.close_due(&state);
                Instant::now() >= next_round
            }
            () = signal::changed() => true,
            done = async { round.as_mut().expect("guarded").await }, if round.is_some() => {
                round = None;
                for (id, reason) in done.unwrap_or_default() {
                    reg.close(id, Why::Refused(reason), &state);
                }
                std::mem::take(&mut again)
            }
        };
        let now_rules = state.rules.load_full();
        if !Arc::ptr_eq(&now_rules, &rules) {
            if now_rules.sessions != rules.sessions {
                reg.reschedule(&now_rules.sessions);
            }
            rules = now_rules;
        }
        if start_round {
            next_round = Instant::now() + rules.sessions.recheck;
            if round.is_some() {
                again = true;
            } else {
                round = Some(tokio::spawn(recheck_all(state.clone(), reg.snapshot())));
            }
        }
    }
}

/// Re-authorizes `sessions` under the rules and revocations in force; those that fail, with why.
async fn recheck_all(
    state: Arc<State>,
    sessions: Vec<(u64, Arc<Kept>, Vec<Arc<Grant>>)>,
) -> Vec<(u64, Reason)> {
    let rules = state.rules.load_full();
    let revocations = state.revocations.load_full();
    let mut failed = Vec::new();
    for (n, (id, kept, grants)) in sessions.into_iter().enumerate() {
        if let Err(r) = recheck::session(&rules, &revocations, &kept, &grants).await {
            failed.push((id, r));
        }
        if n % 256 == 255 {
            tokio::task::yield_now().await; // share the control runtime
        }
    }
    failed
}

impl Registry {
    fn apply(&mut self, cmd: Command, rules: &SessionRules, state: &State) {
        match cmd {
            Command::Open(id, entry) => {
                metrics()
                    .sessions_open
                    .with_label_values(&[&entry.route])
                    .inc();
                self.entries.insert(id, *entry);
                self.schedule(id, rules);
            }
            Command::Grant(id, grant) => {
                let Some(e) = self.entries.get_mut(&id) else {
                    return;
                };
                // A namespace connected again replaces its grant (a fresh token).
                e.grants.retain(|g| g.namespace != grant.namespace);
                if e.grants.len() >= super::MAX_GRANTS {
                    return self.close(id, Why::TooManyNamespaces, state);
                }
                e.grants.push(Arc::new(grant));
                self.schedule(id, rules);
            }
            Command::Gone(id) => {
                if let Some(e) = self.remove(id) {
                    metrics().sessions_open.with_label_values(&[&e.route]).dec();
                }
            }
        }
    }

    /// Removes session `id` and its deadline.
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        if let Some(t) = e.due {
            self.deadlines.remove(&(t, id));
        }
        Some(e)
    }

    /// (Re)computes the deadline of session `id`.
    fn schedule(&mut self, id: u64, rules: &SessionRules) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if let Some(t) = e.due.take() {
            self.deadlines.remove(&(t, id));
        }
        if let Some((t, _)) = deadline(e, rules) {
            e.due = Some(t);
            self.deadlines.insert((t, id));
        }
    }

    /// `sessions` changed on reload: every deadline again.
    fn reschedule(&mut self, rules: &SessionRules) {
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for id in ids {
            self.schedule(id, rules);
        }
    }

    /// Closes every session whose deadline has passed.
    fn close_due(&mut self, state: &State) {
        let now = Instant::now();
        let rules = state.rules.load().sessions;
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.remove(&(t, id));
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            e.due = None;
            if let Some((_, why)) = deadline(e, &rules) {
                self.close(id, why, state);
            }
        }
    }

    /// Ends session `id`: tells its connection, counts it, writes its access-log line.
    fn close(&mut self, id: u64, why: Why, state: &State) {
        let Some(e) = self.remove(id) else {
            return; // already gone
        };
        let m = metrics();
        m.sessions_open.with_label_values(&[&e.route]).dec();
        if e.close.send(why).is_err() {
            return; // its connection ended meanwhile
        }
        m.sessions_closed
            .with_label_values(&[&e.route, why.as_str()])
            .inc();
        let first = e.grants.iter().find_map(|g| g.identity.as_ref());
        let policy = state.rules.load().access_log;
        crate::enforce::session_closed(policy, &e.route, why.as_str(), first, e.opened);
        tracing::info!(route = %e.route, reason = why.as_str(), "session closed");
    }

    /// What a round needs of every session that has a credential to check.
    fn snapshot(&self) -> Vec<(u64, Arc<Kept>, Vec<Arc<Grant>>)> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.grants.is_empty())
            .map(|(id, e)| (*id, e.kept.clone(), e.grants.clone()))
            .collect()
    }
}

/// When session `e` must end under `rules`, and why: the earlier of its credentials' expiry
/// (with `end_at_expiry`, not on an `enforce: observe` route) and its maximum lifetime.
fn deadline(e: &Entry, rules: &SessionRules) -> Option<(Instant, Why)> {
    let life = rules.max_lifetime.map(|m| (e.opened + m, Why::MaxLifetime));
    let expiry = (rules.end_at_expiry && !e.observe)
        .then(|| e.grants.iter().filter_map(|g| g.valid_until()).min())
        .flatten()
        .map(|v| (instant_of(v), Why::Refused(Reason::TokenExpired)));
    match (life, expiry) {
        (Some(l), Some(x)) => Some(if x.0 <= l.0 { x } else { l }),
        (l, x) => l.or(x),
    }
}

/// The monotonic instant of Unix time `unix` (seconds); now if it has passed.
fn instant_of(unix: u64) -> Instant {
    let left = unix as f64 - crate::metrics::unix_now();
    Instant::now() + Duration::from_secs_f64(left.clamp(0.0, 1e9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;

    fn entry(valid_until: &[u64], observe: bool) -> Entry {
        let grants = valid_until
            .iter()
            .map(|&v| {
                Arc::new(Grant {
                    namespace: None,
                    auth: None,
                    identity: Some(Identity {
                        valid_until: Some(v),
                        ..Identity::app("jwt".into(), "a/k".into())
                    }),
                })
            })
            .collect();
        Entry {
            route: "r".into(),
            observe,
            kept: Arc::new(Kept {
                path: "/".into(),
                query: None,
                headers: http::HeaderMap::new(),
            }),
            grants,
            opened: Instant::now(),
            close: tokio::sync::oneshot::channel().0,
            due: None,
        }
    }

    fn rules(end_at_expiry: bool, max_lifetime: u64) -> SessionRules {
        SessionRules {
            end_at_expiry,
            recheck: Duration::from_secs(5),
            max_lifetime: (max_lifetime > 0).then(|| Duration::from_secs(max_lifetime)),
        }
    }

    #[test]
    fn the_earliest_of_expiry_and_lifetime_and_why() {
        let now = crate::metrics::unix_now() as u64;
        let in_secs = |t: Instant| t.saturating_duration_since(Instant::now()).as_secs_f64();
        let e = entry(&[now + 100, now + 10], false);
        let (t, why) = deadline(&e, &rules(true, 60)).unwrap();
        assert_eq!(why, Why::Refused(Reason::TokenExpired));
        assert!(
            (8.5..=10.5).contains(&in_secs(t)),
            "the earliest grant's expiry"
        );
        let (t, why) = deadline(&e, &rules(true, 5)).unwrap();
        assert_eq!(why, Why::MaxLifetime);
        assert!((4.5..=5.0).contains(&in_secs(t)));
        assert_eq!(deadline(&e, &rules(false, 0)), None, "end_at_expiry: false");
        assert_eq!(
            deadline(&entry(&[now + 10], true), &rules(true, 60)).map(|d| d.1),
            Some(Why::MaxLifetime),
            "observe: expiry never closes it"
        );
        assert_eq!(deadline(&entry(&[], false), &rules(true, 0)), None);
        let (t, _) = deadline(&entry(&[now - 30], false), &rules(true, 0)).unwrap();
        assert_eq!(in_secs(t), 0.0, "already expired: now");
    }
}
