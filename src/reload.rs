//! Hot reload: a change to the config file, to a file it names (a rotated `pem_file`,
//! `value_file`, `secret_file`, ...), or SIGHUP, loads, validates and atomically swaps the
//! compiled config (arc-swap); requests in flight finish on the config they started with.
//!
//! The files' *directories* are watched (inotify via `notify`), so a Kubernetes ConfigMap or
//! Secret update, which swaps the `..data` symlink rather than writing the file, is seen. A
//! change is read only once it has settled: no event for 250 ms, and a file being written in
//! place (opened for writing, not yet closed) is waited for, up to 5 s, so a half-written file is
//! never applied. A reload happens only when the bytes of the config or of a file it names
//! changed (SIGHUP always reloads). An invalid file leaves the old config serving, is logged with
//! `file:line`, and counts `keygate_config_reloads_total{result="error"}` and nothing else:
//! compiling has no effect on the process, and only a ruleset that loaded is activated. Changes
//! to the restart-only [`crate::settings::ServerSettings`] are logged as needing a restart.
//!
//! `revocations.file` is watched the same way ([`watch_revocations`]) and read again with every
//! config reload; an invalid one keeps the list in force. Every change to what open sessions
//! were authorized under (rules, revocations) has them re-authorized at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::metrics::metrics;
use crate::revocation::Source;
use crate::state::State;

/// How long a burst of events must be quiet before the files are read.
const QUIET: Duration = Duration::from_millis(250);
/// The longest wait for a file opened for writing to be closed.
const WRITING: Duration = Duration::from_secs(5);

/// Watches the config file at `path`, the files it names, and SIGHUP, until the process exits.
/// `watching` was installed on the config's directory before keygate served
/// ([`Watching::install`]).
pub(crate) async fn watch(state: Arc<State>, path: PathBuf, mut watching: Watching) {
    let files = || {
        let mut f = vec![watched_path(&path)];
        f.extend(
            state
                .referenced_files
                .load()
                .iter()
                .map(|p| watched_path(p)),
        );
        f
    };
    watching.listen_for_sighup();
    watching.add(&files());
    let mut last = fingerprint(&files());
    // The config changed since the initial load: its writes are queued as events (the directory
    // has been watched since before serving), or came in the moment before. Either way it is
    // read once it has settled, never while a writer still has it open.
    let text = std::fs::read(&path).ok();
    if text.as_deref().map(crate::secret::sha256) != Some(state.source_digest) {
        settle(&mut watching.events, Change::Other, &files()).await;
        reload(&state, &path).await;
        watching.add(&files());
        last = fingerprint(&files());
    }
    loop {
        let forced = watching.next(&files()).await;
        let now = fingerprint(&files());
        if !forced && now == last {
            continue; // unchanged (or mid-swap: the next event will tell)
        }
        reload(&state, &path).await;
        watching.add(&files());
        last = fingerprint(&files());
    }
}

/// Watches `revocations.file` (`path`) until the process exits, applying each change
/// ([`reload_revocations`]). SIGHUP reloads it with the config. `watching` was installed on its
/// directory before keygate served ([`Watching::install`]).
pub(crate) async fn watch_revocations(state: Arc<State>, path: PathBuf, mut watching: Watching) {
    let files = [watched_path(&path)];
    // It may have changed since start-up: once any write in progress has settled, apply what it
    // holds (not counted as a reload).
    settle(&mut watching.events, Change::Other, &files).await;
    let mut last = fingerprint(&files);
    if let Ok(entries) = crate::revocation_file::load(&path) {
        state.apply_revocations(Source::File, entries);
    }
    loop {
        watching.next(&files).await;
        let now = fingerprint(&files);
        if now != last {
            last = now;
            reload_revocations(&state, &path);
        }
    }
}

/// What a watcher reports about one file system event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    /// Data written to `path` (still open, perhaps).
    Writing(PathBuf),
    /// `path`, opened for writing, was closed.
    Closed(PathBuf),
    /// Anything else (a create, a rename, a symlink swap, a removal).
    Other,
}

/// The directories being watched, their events, and SIGHUP.
pub(crate) struct Watching {
    watcher: Option<notify::RecommendedWatcher>,
    dirs: HashSet<PathBuf>,
    events: UnboundedReceiver<Change>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Watching {
    /// Starts watching the directories of `files` (inotify, on notify's own thread; no runtime
    /// needed). Called before keygate serves, so every later write to them is seen: a file
    /// rewritten in place right after start-up is still read only once it is closed. A watcher
    /// that cannot start is logged; reload then happens on SIGHUP only.
    pub(crate) fn install(files: &[PathBuf]) -> Watching {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                let path = ev.paths.first().cloned().unwrap_or_default();
                let change = match ev.kind {
                    EventKind::Modify(ModifyKind::Data(_)) => Change::Writing(path),
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => Change::Closed(path),
                    EventKind::Access(_) => return,
                    _ => Change::Other,
                };
                let _ = tx.send(change);
            }
        });
        let watcher = watcher
            .map_err(|e| tracing::error!(error = %e, "cannot watch files; reload on SIGHUP only"))
            .ok();
        let mut watching = Watching {
            watcher,
            dirs: HashSet::new(),
            events,
            hup: None,
        };
        watching.add(files);
        watching
    }

    /// Reloads on SIGHUP too (needs the runtime the watch runs on).
    fn listen_for_sighup(&mut self) {
        match signal(SignalKind::hangup()) {
            Ok(s) => self.hup = Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGHUP handler; reload on SIGHUP is off")
            }
        }
    }

    /// Watches the directories of `files` not watched yet.
    fn add(&mut self, files: &[PathBuf]) {
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        for f in files {
            let f = watched_path(f);
            let dir = f
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            if self.dirs.contains(&dir) {
                continue;
            }
            match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(dir);
                }
                Err(e) => {
                    tracing::error!(error = %e, dir = %dir.display(), "cannot watch the directory; reload on SIGHUP only")
                }
            }
        }
    }

    /// Waits for the next settled change among `files` (`false`) or SIGHUP (`true`).
    async fn next(&mut self, files: &[PathBuf]) -> bool {
        loop {
            let first = tokio::select! {
                Some(_) = async { self.hup.as_mut()?.recv().await } => return true,
                Some(c) = self.events.recv() => c,
            };
            if relevant(&first, files) {
                settle(&mut self.events, first, files).await;
                return false;
            }
        }
    }
}

/// `path` as events name it: its directory resolved (absolute, no `..`, no symlinked
/// directories), its file name kept as it is (a ConfigMap's `..data` swap must still be seen as
/// a change of the link). notify joins a relative watch to the working directory, and reports
/// a directory watched under two spellings (`./`, `../conf/`, a symlinked directory: one inode,
/// one inotify watch) under the last one, so every path is compared, and every directory
/// watched once, in this form.
fn watched_path(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().and_then(|d| std::fs::canonicalize(d).ok());
    match (dir, abs.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => abs,
    }
}

/// Whether an event can be a change of `files`: writes to and closes of other files in the same
/// directories (a log file beside the config) are not; creations, renames and removals
/// (an atomic replace, a ConfigMap's symlink swap) are.
fn relevant(c: &Change, files: &[PathBuf]) -> bool {
    match c {
        Change::Writing(p) | Change::Closed(p) => files.iter().any(|f| f == p),
        Change::Other => true,
    }
}

/// Waits until a burst of changes is over: [`QUIET`] without a relevant event, and no file of
/// `files` left open for writing (at most [`WRITING`] of quiet while one is).
async fn settle(events: &mut UnboundedReceiver<Change>, first: Change, files: &[PathBuf]) {
    let mut writing: HashSet<PathBuf> = HashSet::new();
    let mut note = |c: Change| {
        match c {
            Change::Writing(p) => {
                writing.insert(p);
            }
            Change::Closed(p) => {
                writing.remove(&p);
            }
            Change::Other => {}
        }
        let wait = if writing.is_empty() { QUIET } else { WRITING };
        tokio::time::Instant::now() + wait
    };
    let mut deadline = note(first);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(c)) if relevant(&c, files) => deadline = note(c),
            Ok(Some(_)) => {} // another file in the directory: no news
            _ => return,      // quiet long enough (or the watcher is gone)
        }
    }
}

/// SHA-256 over the bytes of every file of `files` (a missing file counts as such).
fn fingerprint(files: &[PathBuf]) -> [u8; 32] {
    let mut all = Vec::new();
    for f in files {
        match std::fs::read(f) {
            Ok(bytes) => {
                all.extend_from_slice(&crate::secret::sha256(&bytes));
            }
            Err(_) => all.push(0),
        }
    }
    crate::secret::sha256(&all)
}

/// Loads `revocations.file` (`path`) and swaps its entries in, or keeps the list in force and
/// says why (`file:line`); counted in `keygate_config_reloads_total` like a config reload.
pub(crate) fn reload_revocations(state: &State, path: &Path) {
    let m = metrics();
    match crate::revocation_file::load(path) {
        Ok(entries) => {
            let n = entries.len();
            state.apply_revocations(Source::File, entries);
            m.config_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(file = %path.display(), entries = n, "revocations reloaded");
        }
        Err(e) => {
            m.config_reloads.with_label_values(&["error"]).inc();
            tracing::error!(error = %e, "revocations reload failed; the previous list stays in force");
        }
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
            state.referenced_files.store(Arc::new(loaded.files));
            // `revocations.file` is read again with the config (its path needs a restart).
            if loaded.settings.revocations_file.is_some()
                && loaded.settings.revocations_file == state.settings.revocations_file
            {
                state.apply_revocations(Source::File, loaded.revocations);
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
