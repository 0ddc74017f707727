//! A real nginx for the forward-auth tests, run unprivileged from a temporary prefix. Found on
//! PATH or in /usr/sbin; when missing, installed the way `.ci/run` does (apt, as root or with
//! passwordless sudo), or, unprivileged, downloaded by apt with private package lists and
//! unpacked from Debian's packages into `target/test-tools`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary, installing it when missing.
pub(crate) fn nginx_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let found = |p: &Path| p.exists().then(|| p.to_path_buf());
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/nginx/usr/sbin/nginx");
        let system = || found(Path::new("/usr/sbin/nginx")).or_else(|| which("nginx"));
        if let Some(p) = system().or_else(|| found(&local)) {
            return p;
        }
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        // As root (or with passwordless sudo): install it, updating the package lists first if
        // the machine never did (a fresh image has none).
        let sudo = if root { "" } else { "sudo -n " };
        let install = format!(
            "export DEBIAN_FRONTEND=noninteractive; \
             {sudo}apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 || \
             {{ {sudo}apt-get update -qq && {sudo}apt-get install -y -qq --no-install-recommends nginx-light; }}"
        );
        if Command::new("sh").arg("-c").arg(&install).status().is_ok_and(|s| s.success()) {
            if let Some(p) = system() {
                return p;
            }
        }
        // Unprivileged: apt with private package lists downloads Debian's nginx (the binary) and
        // nginx-common, unpacked under target/test-tools.
        let dir = local.parent().and_then(Path::parent).and_then(Path::parent).unwrap().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let download = "set -e; mkdir -p apt/lists/partial apt/cache/archives/partial; \
             o=\"-o Debug::NoLocking=1 -o Dir::State::Lists=$PWD/apt/lists -o Dir::Cache=$PWD/apt/cache\"; \
             apt-get -qq $o update; apt-get -qq $o download nginx nginx-common; \
             for d in nginx*.deb; do dpkg-deb -x \"$d\" .; done";
        let ok = Command::new("sh")
            .arg("-c")
            .arg(download)
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok && local.exists(), "nginx is needed for the forward-auth tests: install nginx-light (.ci/run does)");
        local
    })
    .clone()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// A running nginx; stopped on drop.
pub(crate) struct Nginx {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx with `server` as the body of its one `server {}` block (listening on a
    /// free port, which `{listen}` in `server` names).
    pub(crate) fn start(server: &str) -> Nginx {
        let port = super::free_port();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log stderr warn;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n{}\n  }}\n}}\n",
            server.replace("{listen}", &port.to_string())
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx_binary())
            .args(["-p", &p, "-c", &format!("{p}/nginx.conf")])
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, addr, _dir: dir }
    }
}
