//! A real `redis-server` for the shared-state tests, on a free 127.0.0.1 port, without
//! persistence, killed on drop. Found on PATH or in /usr/bin; when missing, installed the way
//! `.ci/run` does (apt, as root or with passwordless sudo), or, unprivileged, Debian's packages
//! downloaded by apt with private package lists and unpacked into `target/test-tools/redis`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The redis-server binary and the library directory it needs (`None`: the system's).
fn redis_binary() -> (PathBuf, Option<PathBuf>) {
    static BIN: std::sync::OnceLock<(PathBuf, Option<PathBuf>)> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let found = |p: &Path| p.exists().then(|| p.to_path_buf());
        let system = || found(Path::new("/usr/bin/redis-server")).or_else(|| which("redis-server"));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/redis");
        let local = dir.join("usr/bin/redis-check-rdb"); // redis-server is a link to it
        let libs = dir.join("usr/lib/x86_64-linux-gnu");
        if let Some(p) = system() {
            return (p, None);
        }
        if local.exists() {
            return (local, Some(libs));
        }
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        let sudo = if root { "" } else { "sudo -n " };
        let install = format!(
            "export DEBIAN_FRONTEND=noninteractive; \
             {sudo}apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 || \
             {{ {sudo}apt-get update -qq && {sudo}apt-get install -y -qq --no-install-recommends redis-server; }}"
        );
        if Command::new("sh").arg("-c").arg(&install).status().is_ok_and(|s| s.success()) {
            if let Some(p) = system() {
                return (p, None);
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        let download = "set -e; mkdir -p apt/lists/partial apt/cache/archives/partial; \
             o=\"-o Debug::NoLocking=1 -o Dir::State::Lists=$PWD/apt/lists -o Dir::Cache=$PWD/apt/cache\"; \
             apt-get -qq $o update; apt-get -qq $o download redis-tools liblzf1 libjemalloc2; \
             for d in *.deb; do dpkg-deb -x \"$d\" .; done";
        let ok = Command::new("sh")
            .arg("-c")
            .arg(download)
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok && local.exists(), "redis-server is needed for the shared-state tests: install redis-server (.ci/run does)");
        (local, Some(libs))
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

/// A running redis-server; killed on drop.
pub(crate) struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1 (kept across [`RedisServer::restart`]).
    pub(crate) port: u16,
    password: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl RedisServer {
    /// A fresh server without a password.
    pub(crate) fn start() -> RedisServer {
        Self::launch(None)
    }

    /// A fresh server with `requirepass password`.
    pub(crate) fn with_password(password: &str) -> RedisServer {
        Self::launch(Some(password.to_string()))
    }

    fn launch(password: Option<String>) -> RedisServer {
        let mut r = RedisServer {
            child: None,
            port: super::free_port(),
            password,
            _dir: tempfile::tempdir().unwrap(),
        };
        r.restart();
        r
    }

    /// `redis://127.0.0.1:PORT/0`, without the password.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to its clients' sockets beyond the kernel's).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on the same port, empty, and waits until it answers.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let (bin, libs) = redis_binary();
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        if let Some(l) = libs {
            cmd.env("LD_LIBRARY_PATH", l);
        }
        self.child = Some(cmd.spawn().expect("redis-server starts"));
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client connection (with the password, if any).
    pub(crate) fn connection(&self) -> redis::Connection {
        let url = match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", self.port),
            None => self.url(),
        };
        redis::Client::open(url).unwrap().get_connection().unwrap()
    }

    /// The keys matching `pattern`.
    pub(crate) fn keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS").arg(pattern).query(&mut self.connection()).unwrap()
    }
}
