//! The keygate process under test: one builder, started on 127.0.0.1 ephemeral ports, killed on
//! drop.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use super::http::{request, Resp};
use super::{bin, eventually, free_port, try_eventually};

/// A running keygate process, killed on drop.
pub(crate) struct Keygate {
    pub(crate) child: Child,
    /// The client-facing listener.
    pub(crate) addr: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub(crate) admin: SocketAddr,
    /// Holds the config file and the log; removed on drop.
    _dir: tempfile::TempDir,
    /// keygate's stderr (logs at `log_level`) and stdout (the access log).
    pub(crate) log: PathBuf,
    /// The config file keygate runs with.
    config: PathBuf,
    /// How the config was built, so a test can write a new version of it (reload).
    builder: Builder,
}

/// How to start keygate: `Keygate::builder().config(body).upstream(addr).start()`.
///
/// `config` is a config body without `version`, `listen`, `admin_listen` and `upstream`: the
/// builder adds them (ports chosen when the builder is made, so `text()` is stable across clones),
/// plus `shutdown_grace_seconds: 1` unless the body sets it.
#[derive(Clone)]
pub(crate) struct Builder {
    body: String,
    upstream: String,
    env: Vec<(String, String)>,
    level: String,
    port: u16,
    admin_port: u16,
    file: Option<PathBuf>,
    /// Run in the config's directory with `--config config.yaml` (a relative path).
    relative: bool,
}

impl Keygate {
    /// A builder on two fresh ports, in front of nothing (`127.0.0.1:9`) until `upstream`.
    pub(crate) fn builder() -> Builder {
        Builder {
            body: String::new(),
            upstream: "url: \"http://127.0.0.1:9\"".into(),
            env: Vec::new(),
            level: "info".into(),
            port: free_port(),
            admin_port: free_port(),
            file: None,
            relative: false,
        }
    }

    /// The full config text for `body` on this instance's ports and upstream (to rewrite the
    /// config file and reload).
    pub(crate) fn config_text(&self, body: &str) -> String {
        self.builder.clone().config(body).text()
    }

    /// The config file keygate runs with.
    pub(crate) fn config_path(&self) -> PathBuf {
        self.config.clone()
    }

    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        request(self.addr, "GET", path, headers, b"")
    }

    pub(crate) fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(self.addr, "POST", path, headers, body)
    }

    pub(crate) fn admin_get(&self, path: &str) -> Resp {
        request(self.admin, "GET", path, &[], b"")
    }

    /// The value of a metric line (exact series, e.g. `keygate_jwks_keys{authenticator="g"}`).
    pub(crate) fn metric(&self, series: &str) -> Option<f64> {
        self.admin_get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
    }

    /// The `/metrics` text once it contains every needle (counters are updated just after a
    /// response is written, so a scrape may briefly lag the client); panics after 5 s.
    pub(crate) fn metrics_with(&self, needles: &[&str]) -> String {
        let mut last = String::new();
        let found = try_eventually(Duration::from_secs(5), || {
            last = self.admin_get("/metrics").text();
            needles.iter().all(|n| last.contains(*n)).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            let missing: Vec<&&str> = needles.iter().filter(|n| !last.contains(**n)).collect();
            panic!("missing {missing:?} in\n{last}")
        })
    }

    /// Waits until `/readyz` answers `status`; panics after `secs`.
    pub(crate) fn wait_readyz(&self, status: u16, secs: u64) {
        eventually(&format!("/readyz {status}"), Duration::from_secs(secs), || {
            (self.admin_get("/readyz").status == status).then_some(())
        })
    }

    /// Waits for the process to exit; panics after `within`.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = &mut self.child;
        eventually("keygate to exit", within, || child.try_wait().unwrap())
    }

    /// Sends `signal` (e.g. "TERM", "HUP") to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until keygate's output (process log and access log) contains `needle`; panics
    /// after 5 s.
    pub(crate) fn wait_for_log(&self, needle: &str) -> String {
        eventually(&format!("`{needle}` in keygate's output"), Duration::from_secs(5), || {
            let logs = self.logs();
            logs.contains(needle).then_some(logs)
        })
    }
}

impl Drop for Keygate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Builder {
    /// The config body (see [`Builder`]).
    pub(crate) fn config(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// The upstream: `http://{addr}`.
    pub(crate) fn upstream(self, addr: SocketAddr) -> Self {
        self.upstream_map(&format!("url: \"http://{addr}\""))
    }

    /// The inside of `upstream: { ... }` (e.g. an https URL and `ca_file`).
    pub(crate) fn upstream_map(mut self, map: &str) -> Self {
        self.upstream = map.into();
        self
    }

    /// Where the admin port will listen (known before `start`).
    pub(crate) fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    /// An environment variable for the process.
    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// `KEYGATE_LOG` (default `info`).
    pub(crate) fn log_level(mut self, level: &str) -> Self {
        self.level = level.into();
        self
    }

    /// Runs on an existing config file instead of writing one (it should listen on
    /// [`Builder::ports`]).
    pub(crate) fn config_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }

    /// Runs keygate in the config's directory with a relative `--config config.yaml`.
    pub(crate) fn relative_config_path(mut self) -> Self {
        self.relative = true;
        self
    }

    /// The full config text.
    pub(crate) fn text(&self) -> String {
        let grace = if self.body.contains("shutdown_grace_seconds") {
            ""
        } else {
            "shutdown_grace_seconds: 1\n"
        };
        format!(
            "version: 1\nlisten: \"127.0.0.1:{}\"\nadmin_listen: \"127.0.0.1:{}\"\nupstream: {{ {}, connect_timeout_ms: 500 }}\n{grace}{}",
            self.port, self.admin_port, self.upstream, self.body
        )
    }

    /// Writes the config (unless `config_file`), spawns keygate and waits until both listeners
    /// accept; panics with its log if they do not within 20 s.
    pub(crate) fn start(self) -> Keygate {
        let dir = tempfile::tempdir().unwrap();
        let config = match &self.file {
            Some(f) => f.clone(),
            None => {
                let f = dir.path().join("config.yaml");
                std::fs::write(&f, self.text()).unwrap();
                f
            }
        };
        // stderr (process logs) and stdout (the access log) into one file.
        let log = dir.path().join("keygate.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin());
        if self.relative && self.file.is_none() {
            cmd.current_dir(dir.path()).args(["run", "--config", "config.yaml"]);
        } else {
            cmd.args(["run", "--config"]).arg(&config);
        }
        cmd.env("KEYGATE_LOG", &self.level)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let kg = Keygate {
            child: cmd.spawn().expect("spawn keygate"),
            addr: SocketAddr::from(([127, 0, 0, 1], self.port)),
            admin: SocketAddr::from(([127, 0, 0, 1], self.admin_port)),
            _dir: dir,
            log,
            config,
            builder: self,
        };
        let up = |a| TcpStream::connect(a).is_ok();
        let listening = || (up(kg.addr) && up(kg.admin)).then_some(());
        if try_eventually(Duration::from_secs(20), listening).is_none() {
            panic!("keygate did not start: {}", kg.logs());
        }
        kg
    }
}
