//! Hot reload: a change to the config file, or SIGHUP, loads, validates and atomically swaps the
//! compiled config (arc-swap); requests in flight finish on the config they started with.
//!
//! The file's *directory* is watched (inotify via `notify`), so a Kubernetes ConfigMap update,
//! which swaps the `..data` symlink rather than writing the file, is seen. Events are debounced
//! and a reload happens only when the file's bytes changed (SIGHUP always reloads). An invalid
//! file leaves the old config serving, is logged with `file:line`, and counts
//! `keygate_config_reloads_total{result="error"}` and nothing else: compiling has no effect on
//! the process, and only a ruleset that loaded is activated. Changes to the restart-only
//! [`crate::settings::ServerSettings`] are logged as needing a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{signal, SignalKind};

use crate::metrics::metrics;
use crate::state::State;

/// Watches `path` and SIGHUP until the process exits.
pub(crate) async fn watch(state: Arc<State>, path: PathBuf) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reload on SIGHUP is off");
            return;
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
            tracing::error!(error = %e, dir = %dir.display(), "cannot watch the config directory; reload on SIGHUP only");
            None
        }
    };
    // The file may have changed between the initial load and this watch starting.
    let mut last = std::fs::read(&path).ok();
    if last.as_deref().map(crate::secret::sha256) != Some(state.source_digest) {
        reload(&state, &path).await;
    }
    loop {
        let forced = tokio::select! {
            _ = hup.recv() => true,
            Some(()) = rx.recv() => {
                // Debounce: editors and ConfigMap swaps produce bursts of events.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while rx.try_recv().is_ok() {}
                false
            }
        };
        let now = std::fs::read(&path).ok();
        if !forced && (now.is_none() || now == last) {
            continue; // unchanged (or mid-swap: the next event will tell)
        }
        last = now;
        reload(&state, &path).await;
    }
}

/// Loads `path` and swaps it in, or keeps the old config and says why. Reading and compiling
/// (file I/O, key decoding) run on a blocking thread, off the control runtime that serves the
/// admin port; the new rules are activated here, just before the swap, so a config that fails
/// to load leaves no trace (`ruleset::activate`).
pub(crate) async fn reload(state: &State, path: &Path) {
    let m = metrics();
    let file = path.to_path_buf();
    let loaded = match tokio::task::spawn_blocking(move || crate::ruleset::load(&file)).await {
        Ok(loaded) => loaded,
        Err(e) => {
            m.config_reloads.with_label_values(&["error"]).inc();
            tracing::error!(error = %e, "config reload failed; the previous config stays in force");
            return;
        }
    };
    match loaded {
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
            new.activate(Some(&old));
            state.rules.store(Arc::new(new));
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
