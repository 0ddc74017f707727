//! `routes:` (`docs/config.md`, "Routes"): a route's template, methods, who may pass, and what
//! else it requires.

use indexmap::IndexMap;
use serde::Deserialize;

use super::shared::QuotaConfig;
use super::value::Str;

/// `routes[].enforce`.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Enforce {
    /// Denials are enforced (default).
    #[default]
    Enforce,
    /// Decisions are recorded (metrics `outcome="observed"`, access log) and the request is
    /// forwarded anyway, with identity headers only when it would have been allowed.
    Observe,
}

/// A route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name (also the metric label).
    pub name: Str,
    /// Template: `{name}` one segment, `{*name}` the rest (possibly empty).
    pub path: Str,
    /// Allowed methods; absent means all. `HEAD` is allowed wherever `GET` is.
    pub methods: Option<Vec<Str>>,
    /// Who may pass: `anonymous` or alternatives.
    pub auth: AuthSpec,
    /// `user_id` or `claims.<name>` -> `"{param}"`.
    #[serde(default)]
    pub bind: IndexMap<String, Str>,
    /// In-stream Socket.IO CONNECT authentication happens on this route only.
    #[serde(default)]
    pub socketio: bool,
    /// `enforce` (default) or `observe`.
    #[serde(default)]
    pub enforce: Enforce,
    /// Requests allowed per window and per user, credential, address or claim; none when absent.
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
    /// A CEL condition over the request and identity; false: 403 `condition_failed`.
    #[serde(default)]
    pub allow_if: Option<Str>,
    /// JSON Pointers (`*` = every array item) whose values must equal the user id.
    #[serde(default)]
    pub bind_json: Vec<Str>,
}

/// `auth: anonymous`, or a list of alternatives (a name, or a list of names that must all pass).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "`anonymous` or a list of authenticator names / lists of names"
)]
pub enum AuthSpec {
    /// `anonymous`, or a single authenticator name.
    Word(String),
    /// Any one of these alternatives.
    Alternatives(Vec<AuthItem>),
}

/// One alternative.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "an authenticator name or a list of names")]
pub enum AuthItem {
    /// One authenticator.
    One(String),
    /// Authenticators that must all pass (their user ids must agree).
    All(Vec<String>),
}
