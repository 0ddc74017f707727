//! Builds and runs the pingora server: the proxy service on `listen` (optionally TLS) and the
//! admin service on `admin_listen`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::metrics::Metrics;
use crate::proxy::{Keygate, State};
use crate::runtime::Runtime;

/// Runs keygate with `runtime` until SIGTERM/SIGINT; never returns.
pub fn run(runtime: Runtime) -> ! {
    if runtime.mode == crate::config::Mode::Development {
        tracing::warn!("development mode: a public key alone authenticates any claimed user");
    }
    for name in runtime.not_ready() {
        tracing::warn!(authenticator = name, "JWK set providers are not available in this build; requests needing it answer 503 key_source_unavailable");
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
    let state = Arc::new(State {
        runtime: ArcSwap::from_pointee(runtime),
        metrics: Metrics::new(),
    });

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
    tracing::info!(%listen, %admin_listen, threads, "keygate serving");
    server.run_forever()
}
