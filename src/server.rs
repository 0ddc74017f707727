//! Builds and runs the pingora server: the proxy service on `listen` (optionally TLS) and the
//! admin service on `admin_listen`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::proxy::{Keygate, State};
use crate::runtime::Runtime;

/// Runs keygate with `runtime` until SIGTERM/SIGINT; never returns.
pub fn run(runtime: Runtime) -> ! {
    if runtime.mode == crate::config::Mode::Development {
        tracing::warn!("development mode: a public key alone authenticates any claimed user");
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conf = ServerConf {
        threads,
        work_stealing: false,
        grace_period_seconds: Some(runtime.shutdown_grace_seconds),
        graceful_shutdown_timeout_seconds: Some(runtime.shutdown_grace_seconds.min(5)),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let listen = runtime.listen.clone();
    let admin_listen = runtime.admin_listen.clone();
    let tls = runtime.tls.clone();
    let providers = runtime.providers();
    let state = Arc::new(State {
        runtime: ArcSwap::from_pointee(runtime),
    });
    crate::metrics::metrics(); // register every family before the first scrape

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Keygate {
            state: state.clone(),
        },
        "keygate proxy",
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
    let mut admin = Service::new(
        "keygate admin".to_string(),
        pingora::apps::http_app::HttpServer::new_app(Admin { state }),
    );
    admin.add_tcp(&admin_listen);
    admin.threads = Some(1);
    server.add_service(proxy);
    server.add_service(admin);
    if !providers.is_empty() {
        let mut jwks = pingora::services::background::background_service(
            "keygate jwks",
            JwksLoops { providers },
        );
        jwks.threads = Some(1);
        server.add_service(jwks);
    }
    tracing::info!(%listen, %admin_listen, threads, "keygate serving");
    server.run_forever()
}

/// Runs the fetch loop of every JWK-set provider on the background service's runtime, so the
/// request path never performs I/O for keys.
struct JwksLoops {
    providers: Vec<Arc<crate::auth::jwks::JwksProvider>>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for JwksLoops {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        for p in &self.providers {
            tokio::spawn(crate::auth::jwks::JwksProvider::run(Arc::downgrade(p)));
        }
        let _ = shutdown.changed().await;
    }
}
