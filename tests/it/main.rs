//! keygate's integration tests: one binary (as linkerd2-proxy's `linkerd/app/integration`), so
//! the harness in [`common`] compiles once. Each module drives the real `keygate` binary on
//! 127.0.0.1 ephemeral ports with real peers; see `common` for the harness.

mod common;

mod access_log;
mod assertion;
mod attacks;
mod authenticators;
mod buffers;
mod cli;
mod cors;
mod docs;
mod doors;
mod forward_auth;
mod jwks;
mod jwt_attacks;
mod knock;
mod layout;
mod never_reaches;
mod observe;
mod ops;
mod paths;
mod proxy;
mod reload_metrics;
mod reload_sockets;
mod sessions;
mod shared_state;
mod telemetry;
mod throttle;
mod upgrades;
mod vendors;
mod websocket;
mod zlib_shim;
