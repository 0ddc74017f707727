//! Hot reload: a change to the config file, or SIGHUP, loads, validates and atomically swaps the
//! compiled config (arc-swap); requests in flight finish on the config they started with.
//!
//! The file's *directory* is watched (inotify via `notify`), so a Kubernetes ConfigMap update,
//! which swaps the `..data` symlink rather than writing the file, is seen. Events are debounced
//! and a reload happens only when the file's bytes changed (SIGHUP always reloads). An invalid
//! file leaves the old config serving, is logged with `file:line`, and counts
//! `keygate_config_reloads_total{result="error"}`. Changes to the restart-only
//! [`crate::settings::ServerSettings`] are logged as needing a restart.
//!
//! `revocations.file` is watched the same way ([`watch_revocations`]) and read again with every
//! config reload; an invalid one keeps the list in force. Every change to what open sessions
//! were authorized under (rules, revocations) pokes `crate::sessions::signal`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{signal, SignalKind};

use crate::metrics::metrics;
use crate::revocation::{Revocation, Source};
use crate::ruleset::Ruleset;
use crate::state::State;

/// Starts the background tasks of `rt` on the current runtime: its upstream's resolver and its
/// JWK-set providers' fetch loops, each given what its predecessor in `old` held (the resolved
/// address; the keys of the same name and endpoint) so a reload never drops either.
pub(crate) fn start_background(rt: &Ruleset, old: Option<&Ruleset>) {
    if let Some(old) = old {
        rt.upstream.adopt(&old.upstream);
    }
    tokio::spawn(crate::upstream::resolve_loop(Arc::downgrade(&rt.upstream)));
    let previous = old.map(Ruleset::providers).unwrap_or_default();
    for p in rt.providers() {
        if let Some(prev) = previous.iter().find(|o| o.name() == p.name()) {
            p.adopt(prev);
        }
        tokio::spawn(crate::auth::jwks::refresh::run(Arc::downgrade(&p)));
    }
}

/// Watches `path` and SIGHUP until the process exits.
pub(crate) async fn watch(state: Arc<State>, path: PathBuf) {
    // The file may have changed between the initial load and this watch starting.
    let last = std::fs::read(&path).ok();
    if last.as_deref().map(crate::secret::sha256) != Some(state.rules.load().source_digest) {
        reload(&state, &path);
    }
    on_changes(&path, last, true, || reload(&state, &path)).await;
}

/// Watches `revocations.file` (`path`) until the process exits, applying each change
/// ([`reload_revocations`]). SIGHUP reloads it with the config.
pub(crate) async fn watch_revocations(state: Arc<State>, path: PathBuf) {
    let last = std::fs::read(&path).ok();
    // It may have changed since start-up: apply what it holds now (not counted as a reload).
    if let Ok(entries) = crate::revocation_file::load(&path) {
        apply_revocations(&state, Source::File, entries);
    }
    on_changes(&path, last, false, || reload_revocations(&state, &path)).await;
}

/// Calls `changed` whenever the bytes of `path` change (its directory is watched, so a
/// ConfigMap's symlink swap counts; events debounced 200 ms), and on every SIGHUP when `hup`.
async fn on_changes(path: &Path, mut last: Option<Vec<u8>>, hup: bool, mut changed: impl FnMut()) {
    let mut sighup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s).filter(|_| hup),
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reload on SIGHUP is off");
            None
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            let _ = tx.send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %e, dir = %dir.display(), "cannot watch the directory; reload on SIGHUP only");
            None
        }
    };
    loop {
        let forced = tokio::select! {
            Some(_) = async { sighup.as_mut()?.recv().await } => true,
            Some(()) = rx.recv() => {
                // Debounce: editors and ConfigMap swaps produce bursts of events.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while rx.try_recv().is_ok() {}
                false
            }
        };
        let now = std::fs::read(path).ok();
        if !forced && (now.is_none() || now == last) {
            continue; // unchanged (or mid-swap: the next event will tell)
        }
        last = now;
        changed();
    }
}

/// Loads `revocations.file` (`path`) and swaps its entries in, or keeps the list in force and
/// says why (`file:line`); counted in `keygate_config_reloads_total` like a config reload.
pub(crate) fn reload_revocations(state: &State, path: &Path) {
    let m = metrics();
    match crate::revocation_file::load(path) {
        Ok(entries) => {
            let n = entries.len();
            apply_revocations(state, Source::File, entries);
            m.config_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(file = %path.display(), entries = n, "revocations reloaded");
        }
        Err(e) => {
            m.config_reloads.with_label_values(&["error"]).inc();
            tracing::error!(error = %e, "revocations reload failed; the previous list stays in force");
        }
    }
}

/// Puts `entries` in force as `source`'s revocations (the other source's are kept), sets
/// `keygate_revocations{source}`, and has open sessions re-authorized at once. Every updater of
/// the revocations (the file, shared state) goes through here.
pub(crate) fn apply_revocations(state: &State, source: Source, entries: Vec<Revocation>) {
    let n = entries.len();
    let set = state.revocations.load().with(source, entries);
    state.revocations.store(Arc::new(set));
    metrics()
        .revocations
        .with_label_values(&[source.as_str()])
        .set(n as i64);
    crate::sessions::signal::poke();
}

/// Loads `path` and swaps it in, or keeps the old config and says why.
pub(crate) fn reload(state: &State, path: &Path) {
    let m = metrics();
    match crate::ruleset::load(path) {
        Ok(loaded) => {
            for what in state.settings.changed(&loaded.settings) {
                tracing::warn!(
                    field = what,
                    "config change needs a restart to take effect; the running value stays"
                );
            }
            let new = loaded.rules;
            let old = state.rules.load_full();
            for w in new.warnings() {
                tracing::warn!(warning = %w, "config");
            }
            start_background(&new, Some(&old));
            state.rules.store(Arc::new(new));
            // `revocations.file` is read again with the config (its path needs a restart).
            if loaded.settings.revocations_file.is_some()
                && loaded.settings.revocations_file == state.settings.revocations_file
            {
                apply_revocations(state, Source::File, loaded.revocations);
            }
            crate::sessions::signal::poke(); // open sessions: re-authorized under the new rules
            m.config_reloads.with_label_values(&["ok"]).inc();
            m.config_last_reload_success.set(crate::metrics::unix_now());
            tracing::info!(file = %path.display(), "config reloaded");
        }
        Err(e) => {
            m.config_reloads.with_label_values(&["error"]).inc();
            tracing::error!(error = %e, "config reload failed; the previous config stays in force");
        }
    }
}
