//! Settings that take effect only when keygate starts: the listening addresses, TLS, the drain
//! time, the upstream CA file and `telemetry` (its exporter owns a thread and a connection). A reload compares them with those in force and logs each
//! change as needing a restart (the Helm chart rolls pods when one of these changes).

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{Config, FieldError};

/// The restart-only part of the config.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerSettings {
    /// `listen`.
    pub(crate) listen: SocketAddr,
    /// `admin_listen`.
    pub(crate) admin_listen: SocketAddr,
    /// `(cert_file, key_file)` when TLS is terminated on `listen`.
    pub(crate) tls: Option<(String, String)>,
    /// `shutdown_grace_seconds`: the SIGTERM drain time.
    pub(crate) shutdown_grace: Duration,
    /// `upstream.ca_file`: the CAs an https upstream is verified against.
    pub(crate) upstream_ca_file: Option<String>,
    /// `forward_auth.listen`: the forward-auth listener, if any.
    pub(crate) forward_auth_listen: Option<SocketAddr>,
    /// `telemetry`, when it has an `otlp_endpoint` (traces are off otherwise).
    pub(crate) telemetry: Option<crate::telemetry::Settings>,
    /// `shared_state`: Redis, when set (its connection lives as long as the process).
    pub(crate) shared_state: Option<crate::shared::Settings>,
    /// `revocations.file`, watched for changes (its entries reload; the path needs a restart).
    pub(crate) revocations_file: Option<std::path::PathBuf>,
}

impl ServerSettings {
    /// The config fields that need a restart, as `docs/config.md` names them.
    pub(crate) const FIELDS: [&'static str; 9] = [
        "listen",
        "admin_listen",
        "tls",
        "shutdown_grace_seconds",
        "upstream.ca_file",
        "forward_auth.listen",
        "telemetry",
        "shared_state",
        "revocations.file",
    ];

    /// Reads and checks them: addresses parse (once, here) and differ, TLS files are readable.
    pub(crate) fn from_config(cfg: &Config) -> Result<ServerSettings, FieldError> {
        let listen = address("listen", &cfg.listen)?;
        let admin_listen = address("admin_listen", &cfg.admin_listen)?;
        if listen == admin_listen {
            return Err(FieldError::new("admin_listen", "must differ from listen"));
        }
        let forward_auth_listen = match &cfg.forward_auth {
            Some(f) => {
                let a = address("forward_auth.listen", &f.listen)?;
                if a == listen || a == admin_listen {
                    return Err(FieldError::new(
                        "forward_auth.listen",
                        "must differ from listen and admin_listen",
                    ));
                }
                Some(a)
            }
            None => None,
        };
        if cfg
            .revocations
            .as_ref()
            .is_some_and(|r| r.file.0.is_empty())
        {
            return Err(FieldError::new("revocations.file", "required: a file path"));
        }
        let tls = cfg
            .tls
            .as_ref()
            .map(|t| (t.cert_file.0.clone(), t.key_file.0.clone()));
        if let Some((cert, key)) = &tls {
            for (f, field) in [(cert, "tls.cert_file"), (key, "tls.key_file")] {
                std::fs::metadata(f)
                    .map_err(|e| FieldError::new(field, format!("cannot read {f}: {e}")))?;
            }
        }
        Ok(ServerSettings {
            listen,
            admin_listen,
            tls,
            shutdown_grace: Duration::from_secs(cfg.shutdown_grace_seconds),
            upstream_ca_file: cfg.upstream.ca_file.as_ref().map(|f| f.0.clone()),
            forward_auth_listen,
            telemetry: crate::telemetry::Settings::from_config(cfg.telemetry.as_ref())?,
            shared_state: cfg
                .shared_state
                .as_ref()
                .map(crate::shared::Settings::compile)
                .transpose()?,
            revocations_file: cfg.revocations.as_ref().map(|r| r.file.0.clone().into()),
        })
    }

    /// The fields (of [`Self::FIELDS`]) whose values differ in `other`.
    pub(crate) fn changed(&self, other: &ServerSettings) -> Vec<&'static str> {
        let differs = [
            self.listen != other.listen,
            self.admin_listen != other.admin_listen,
            self.tls != other.tls,
            self.shutdown_grace != other.shutdown_grace,
            self.upstream_ca_file != other.upstream_ca_file,
            self.forward_auth_listen != other.forward_auth_listen,
            self.telemetry != other.telemetry,
            self.shared_state != other.shared_state,
            self.revocations_file != other.revocations_file,
        ];
        Self::FIELDS
            .iter()
            .zip(differs)
            .filter_map(|(f, d)| d.then_some(*f))
            .collect()
    }
}

/// Parses the `ip:port` of `field`.
fn address(field: &str, v: &str) -> Result<SocketAddr, FieldError> {
    v.parse()
        .map_err(|_| FieldError::new(field, format!("`{v}` is not an ip:port address")))
}
