#![warn(missing_docs)]
//! keygate: an authentication sidecar. A pingora reverse proxy that authenticates every request
//! per route (public keys, API keys, client secrets, HMAC user tokens, JWTs) and forwards
//! trusted identity headers to an unmodified backend.
//!
//! Layout: [`config`] (YAML schema) -> [`ruleset`] + [`settings`] (compiled, immutable) ->
//! [`proxy`] (the request path) using [`decide`], [`routes`], [`policy`], [`auth`] and
//! [`identity`]; [`admin`] and [`metrics`] for operators.

pub mod admin;
pub mod auth;
pub mod config;
pub mod conn;
pub mod cors;
pub mod decide;
#[cfg(feature = "demo")]
pub mod demo;
pub mod forwarding;
pub mod identity;
pub mod logs;
pub mod metrics;
pub mod observe;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod reason;
pub mod reload;
pub mod respond;
pub mod routes;
pub mod ruleset;
pub mod secret;
pub mod server;
pub mod settings;
pub mod socketio;
pub mod state;
pub mod token;
pub mod upstream;
pub mod websocket;
