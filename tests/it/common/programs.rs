//! Real backends and clients as child processes that print one JSON line per event on stdout:
//! Node programs from `tests/node` (npm: socket.io, socket.io-client, express) and the naive
//! Python app in `tests/backends`.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `tests/node`.
pub(crate) fn node_dir() -> String {
    format!("{}/tests/node", env!("CARGO_MANIFEST_DIR"))
}

/// `npm ci` in tests/node once per test binary, if `.ci/run` did not already.
pub(crate) fn ensure_node_modules() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let have =
            |m: &str| std::path::Path::new(&format!("{}/node_modules/{m}", node_dir())).exists();
        if ["express", "jose", "@knocklabs/node"].iter().all(|m| have(m)) {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(node_dir())
            .status()
            .expect("npm is installed (these tests drive real npm packages)");
        assert!(status.success(), "npm ci failed in tests/node");
    });
}

/// A running program; killed on drop.
pub(crate) struct Program {
    child: Child,
    lines: Receiver<String>,
    /// The port it listens on (from its first line, `{"event":"listening","port":N}`).
    pub(crate) port: u16,
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Program {
    /// Starts `tests/node/<script> <args>` and waits for its `listening` line.
    pub(crate) fn node(script: &str, args: &[&str]) -> Program {
        ensure_node_modules();
        let mut cmd = Command::new("node");
        cmd.arg(format!("{}/{script}", node_dir())).args(args);
        Self::spawn(cmd)
    }

    /// Starts `tests/node/<script> <args>` with environment `env` and waits for its
    /// `listening` line.
    pub(crate) fn node_with_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> Program {
        ensure_node_modules();
        let mut cmd = Command::new("node");
        cmd.arg(format!("{}/{script}", node_dir())).args(args).envs(env.iter().copied());
        Self::spawn(cmd)
    }

    /// Starts `tests/backends/<script>` with python3 and waits for its `listening` line.
    pub(crate) fn python(script: &str) -> Program {
        let mut cmd = Command::new("python3");
        cmd.arg(format!("{}/tests/backends/{script}", env!("CARGO_MANIFEST_DIR")));
        Self::spawn(cmd)
    }

    /// Starts the Flask/Werkzeug backend `tests/backends/flask_app.py` with a Python that has
    /// Flask (`super::pypi`).
    pub(crate) fn flask() -> Program {
        let mut cmd = Command::new(super::pypi::python_with_flask());
        cmd.arg(format!("{}/tests/backends/flask_app.py", env!("CARGO_MANIFEST_DIR")));
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Program {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("the program's interpreter is installed (.ci/run installs node)");
        let lines = super::spawn_line_reader(child.stdout.take().unwrap());
        let first: Value =
            serde_json::from_str(&lines.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
        let port = first["port"].as_u64().unwrap() as u16;
        Program { child, lines, port }
    }

    /// Its address.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// Events printed so far (waits up to `wait` for more, returning at the first quiet gap).
    pub(crate) fn events(&self, wait: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        while let Ok(l) =
            self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(serde_json::from_str(&l).unwrap());
        }
        out
    }
}

/// Runs `tests/node/<script> <args>` to completion; its JSON lines.
pub(crate) fn run(script: &str, args: &[&str]) -> Vec<Value> {
    ensure_node_modules();
    let out =
        Command::new("node").arg(format!("{}/{script}", node_dir())).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
