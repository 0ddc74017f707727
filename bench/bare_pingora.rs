//! The framework's floor for the benchmark (`bench/run`, row `pingora`): a minimal pingora
//! `ProxyHttp` passthrough with keygate's server settings (one thread per available core, so 1
//! under `taskset -c N`; `work_stealing: false`) and keygate's upstream peer options, and nothing
//! else: no routing, no authentication, no identity headers, no metrics, no access log. It has
//! keygate's allocator (jemalloc), so the difference between the rows is keygate's own code.
//!
//! Build: `cargo build --release --example bare_pingora` (shares keygate's dependency build).
//! Run:   `bare_pingora LISTEN UPSTREAM`, e.g. `bare_pingora 127.0.0.1:18300 127.0.0.1:18080`.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Bare {
    peer: HttpPeer,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM_ADDR: ip:port");

    // The same peer options keygate's `upstream:` section compiles to (src/upstream.rs).
    let mut peer = HttpPeer::new(upstream, false, upstream.ip().to_string());
    peer.options.connection_timeout = Some(Duration::from_millis(1000));
    peer.options.total_connection_timeout = Some(Duration::from_millis(1000));
    peer.options.read_timeout = Some(Duration::from_secs(60));
    peer.options.idle_timeout = Some(Duration::from_secs(60));

    // The same server settings as keygate (src/server.rs).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conf = ServerConf {
        threads,
        work_stealing: false,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, Bare { peer }, "bare");
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("bare_pingora: {listen} -> {upstream}, threads {threads}");
    server.run_forever()
}
