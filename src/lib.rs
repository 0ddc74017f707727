//! keygate: an authentication sidecar. A pingora reverse proxy that authenticates every request
//! per route (public keys, API keys, client secrets, HMAC user tokens, JWTs) and forwards
//! trusted identity headers to an unmodified backend.
//!
//! Layout: [`config`] (YAML schema) -> [`ruleset`] + `settings` (compiled, immutable) ->
//! `proxy` (the request path) using `decide`, `routes`, `policy`, [`auth`] and
//! `identity`; `admin` and `metrics` for operators.

// `keygate::` paths resolve inside the library too (`demo/echo.rs` is shared with the tests).
extern crate self as keygate;

pub mod access_log;
mod admin;
mod assertion;
pub mod auth;
mod body;
mod canonical;
mod condition;
pub mod config;
mod conn;
mod cors;
mod decide;
#[cfg(feature = "demo")]
pub mod demo;
mod enforce;
pub mod explain;
pub mod form;
mod forward_auth;
mod forwarding;
mod identity;
pub mod json_body;
pub mod logs;
mod metrics;
mod observe;
pub mod path;
mod policy;
mod proxy;
pub mod reason;
mod reload;
mod respond;
pub mod revocation;
mod revocation_file;
pub mod revoke;
mod routes;
pub mod ruleset;
pub mod secret;
pub mod server;
mod sessions;
mod settings;
mod shared;
pub mod socketio;
mod state;
mod telemetry;
mod throttle;
pub mod token;
mod upstream;
pub mod websocket;
