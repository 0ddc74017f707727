//! Builds and runs the pingora server: the proxy service on `listen` (optionally TLS), and a
//! control service that runs the admin port, config reload, the JWK-set fetch loops, the
//! session registry and the `revocations.file` watcher.
//!
//! SIGTERM: pingora stops accepting at once; `/readyz` turns 503; keygate exits 0 as soon as no
//! request or websocket is in flight, and at the latest after `shutdown_grace_seconds`
//! (pingora's own grace period, 300 s by default, is set from it), after at most 2 s more to
//! export the spans still queued.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::ExecutionPhase;

use crate::proxy::Keygate;
use crate::reload::Watching;
use crate::ruleset::Loaded;
use crate::state::State;

/// Runs keygate with `runtime` (loaded from `config_path`, which is then watched for reloads)
/// until SIGTERM/SIGINT; never returns.
pub fn run(loaded: Loaded, config_path: Option<PathBuf>) -> ! {
    for w in loaded.rules.warnings() {
        tracing::warn!(warning = %w, "config");
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = loaded.settings.clone();
    let grace = settings.shutdown_grace;
    let conf = ServerConf {
        threads,
        work_stealing: false,
        grace_period_seconds: Some(grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        ca_file: settings.upstream_ca_file.clone(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let listen = settings.listen.to_string();
    let admin_listen = settings.admin_listen;
    let tls = settings.tls.clone();
    // Bind the admin port now, so a taken port fails start-up with a clear message.
    let admin = match std::net::TcpListener::bind(admin_listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("keygate: cannot listen on admin_listen {admin_listen}: {e}");
            std::process::exit(1);
        }
    };
    let m = crate::metrics::metrics(); // register every family before the first scrape
    m.init();
    m.config_last_reload_success.set(crate::metrics::unix_now());
    let telemetry = settings.telemetry.as_ref().map(|t| {
        crate::telemetry::Telemetry::start(t).unwrap_or_else(|e| {
            eprintln!("keygate: telemetry: {e}");
            std::process::exit(1);
        })
    });
    if let Some(t) = &settings.telemetry {
        tracing::info!(endpoint = %t.traces_url, sample_ratio = t.sample_ratio, "exporting traces");
    }
    // Watch the config and revocations files from now on, before serving: a write after the
    // initial load is then always seen, and read only once it is complete.
    let watchers = Watchers {
        config: config_path
            .as_ref()
            .map(|p| Watching::install(std::slice::from_ref(p))),
        revocations: settings
            .revocations_file
            .as_ref()
            .map(|p| Watching::install(std::slice::from_ref(p))),
    };
    let state = Arc::new(State::new(loaded, config_path, telemetry));

    let app = pingora::proxy::http_proxy(
        &server.configuration,
        Keygate {
            state: state.clone(),
        },
    );
    let mut proxy = pingora::services::listening::Service::new(
        "keygate proxy".to_string(),
        crate::conn::Limited {
            app: Arc::new(app),
            state: state.clone(),
        },
    );
    match tls {
        Some((cert, key)) => {
            if let Err(e) = proxy.add_tls(&listen, &cert, &key) {
                eprintln!("keygate: cannot set up TLS on {listen}: {e}");
                std::process::exit(1);
            }
        }
        None => proxy.add_tcp(&listen),
    }
    let mut control = pingora::services::background::background_service(
        "keygate control",
        Control {
            state: state.clone(),
            admin: std::sync::Mutex::new(Some(admin)),
            watchers: std::sync::Mutex::new(watchers),
        },
    );
    control.threads = Some(1);
    server.add_service(proxy);
    if let Some(fa) = &settings.forward_auth_listen {
        let app = pingora::apps::http_app::HttpServer::new_app(crate::forward_auth::ForwardAuth {
            state: state.clone(),
        });
        let mut svc = pingora::services::listening::Service::new(
            "keygate forward-auth".to_string(),
            crate::conn::Limited {
                app: Arc::new(app),
                state: state.clone(),
            },
        );
        svc.add_tcp(&fa.to_string());
        server.add_service(svc);
        tracing::info!(listen = %fa, "forward-auth listener");
    }
    server.add_service(control);
    drain_on_sigterm(&server, state, grace);
    tracing::info!(%listen, %admin_listen, threads, "keygate serving");
    server.run_forever()
}

/// How long the spans still queued at exit may take to export.
const TRACE_FLUSH: Duration = Duration::from_secs(2);

/// On SIGTERM: mark the state draining (`/readyz` 503) and exit 0 once nothing is in flight or
/// the grace period is over.
fn drain_on_sigterm(server: &Server, state: Arc<State>, grace: Duration) {
    let mut phases = server.watch_execution_phase();
    std::thread::spawn(move || loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::GracefulTerminate) => {
                state.draining.store(true, Ordering::Release);
                let started = Instant::now();
                tracing::info!(
                    inflight = state.inflight.load(Ordering::Acquire),
                    grace_seconds = grace.as_secs(),
                    "SIGTERM: draining"
                );
                while state.inflight.load(Ordering::Acquire) > 0 && started.elapsed() < grace {
                    std::thread::sleep(Duration::from_millis(50));
                }
                tracing::info!(
                    inflight = state.inflight.load(Ordering::Acquire),
                    "drained; exiting"
                );
                crate::access_log::flush();
                if let Some(t) = &state.telemetry {
                    t.shutdown(TRACE_FLUSH);
                }
                std::process::exit(0);
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    });
}

/// The admin port, config reload and JWK-set fetch loops, on one background runtime, so the
/// request path never performs I/O for them. Pingora's shutdown broadcast is ignored: the admin
/// port keeps answering while requests drain.
struct Control {
    state: Arc<State>,
    admin: std::sync::Mutex<Option<std::net::TcpListener>>,
    watchers: std::sync::Mutex<Watchers>,
}

/// The file watchers installed before serving, handed to the control runtime's watch tasks.
#[derive(Default)]
struct Watchers {
    config: Option<Watching>,
    revocations: Option<Watching>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Control {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        self.state.rules.load().activate(None);
        // shared_state (issue 18): subscribe to Redis on this runtime, which lives as long as
        // the process; shared revocations land in `State::revocations`.
        let state = self.state.clone();
        self.state.shared.start(move |entries| {
            state.apply_revocations(crate::revocation::Source::Shared, entries)
        });
        tokio::spawn(crate::sessions::registry::run(self.state.clone()));
        let watchers = self
            .watchers
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        let revocations = self
            .state
            .settings
            .revocations_file
            .clone()
            .zip(watchers.revocations);
        if let Some((path, watching)) = revocations {
            tokio::spawn(crate::reload::watch_revocations(
                self.state.clone(),
                path,
                watching,
            ));
        }
        let admin = self.admin.lock().ok().and_then(|mut a| a.take());
        if let Some(l) = admin.and_then(|l| tokio::net::TcpListener::from_std(l).ok()) {
            tokio::spawn(crate::admin::serve(l, self.state.clone()));
        }
        match self.state.config_path.clone().zip(watchers.config) {
            Some((path, watching)) => {
                crate::reload::watch(self.state.clone(), path, watching).await
            }
            None => std::future::pending().await,
        }
    }
}
