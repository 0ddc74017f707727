//! Settings that take effect only when keygate starts: the listening addresses, TLS, the drain
//! time, the upstream CA file and `telemetry` (its exporter owns a thread and a connection). A reload compares them with those in force and logs each
//! change as needing a restart (the Helm chart rolls pods when one of these changes).

use std::net::SocketAddr;

use crate::config::{Config, FieldError};

/// The restart-only part of the config.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerSettings {
    /// `listen` (ip:port).
    pub(crate) listen: String,
    /// `admin_listen` (ip:port).
    pub(crate) admin_listen: String,
    /// `(cert_file, key_file)` when TLS is terminated on `listen`.
    pub(crate) tls: Option<(String, String)>,
    /// `shutdown_grace_seconds`: SIGTERM drain time, seconds.
    pub(crate) shutdown_grace_seconds: u64,
    /// `upstream.ca_file`: the CAs an https upstream is verified against.
    pub(crate) upstream_ca_file: Option<String>,
    /// `forward_auth.listen`: the forward-auth listener (ip:port), if any.
    pub(crate) forward_auth_listen: Option<String>,
    /// `telemetry`, when it has an `otlp_endpoint` (traces are off otherwise).
    pub(crate) telemetry: Option<crate::telemetry::Settings>,
    /// `revocations.file`, watched for changes (its entries reload; the path needs a restart).
    pub(crate) revocations_file: Option<std::path::PathBuf>,
}

impl ServerSettings {
    /// The config fields that need a restart, as `docs/config.md` names them.
    pub(crate) const FIELDS: [&'static str; 8] = [
        "listen",
        "admin_listen",
        "tls",
        "shutdown_grace_seconds",
        "upstream.ca_file",
        "forward_auth.listen",
        "telemetry",
        "revocations.file",
    ];

    /// Reads and checks them (addresses parse and differ, TLS files are readable).
    pub(crate) fn from_config(cfg: &Config) -> Result<ServerSettings, FieldError> {
        for (field, v) in [("listen", &cfg.listen), ("admin_listen", &cfg.admin_listen)] {
            v.parse::<SocketAddr>().map_err(|_| {
                FieldError::new(field, format!("`{}` is not an ip:port address", v.0))
            })?;
        }
        if cfg.listen.0 == cfg.admin_listen.0 {
            return Err(FieldError::new("admin_listen", "must differ from listen"));
        }
        let forward_auth_listen = match &cfg.forward_auth {
            Some(f) => {
                f.listen.parse::<SocketAddr>().map_err(|_| {
                    FieldError::new(
                        "forward_auth.listen",
                        format!("`{}` is not an ip:port address", f.listen.0),
                    )
                })?;
                if f.listen.0 == cfg.listen.0 || f.listen.0 == cfg.admin_listen.0 {
                    return Err(FieldError::new(
                        "forward_auth.listen",
                        "must differ from listen and admin_listen",
                    ));
                }
                Some(f.listen.0.clone())
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
            listen: cfg.listen.0.clone(),
            admin_listen: cfg.admin_listen.0.clone(),
            tls,
            shutdown_grace_seconds: cfg.shutdown_grace_seconds,
            upstream_ca_file: cfg.upstream.ca_file.as_ref().map(|f| f.0.clone()),
            forward_auth_listen,
            telemetry: crate::telemetry::Settings::from_config(cfg.telemetry.as_ref())?,
            revocations_file: cfg.revocations.as_ref().map(|r| r.file.0.clone().into()),
        })
    }

    /// The fields (of [`Self::FIELDS`]) whose values differ in `other`.
    pub(crate) fn changed(&self, other: &ServerSettings) -> Vec<&'static str> {
        let differs = [
            self.listen != other.listen,
            self.admin_listen != other.admin_listen,
            self.tls != other.tls,
            self.shutdown_grace_seconds != other.shutdown_grace_seconds,
            self.upstream_ca_file != other.upstream_ca_file,
            self.forward_auth_listen != other.forward_auth_listen,
            self.telemetry != other.telemetry,
            self.revocations_file != other.revocations_file,
        ];
        Self::FIELDS
            .iter()
            .zip(differs)
            .filter_map(|(f, d)| d.then_some(*f))
            .collect()
    }
}
