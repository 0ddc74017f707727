//! `forward_auth:`: keygate as the auth service of another proxy (`docs/config.md`,
//! "Forward-auth").

use serde::Deserialize;

use super::value::Str;

/// `forward_auth:` keygate as the auth service of another proxy (nginx `auth_request`, Traefik
/// ForwardAuth, Envoy `ext_authz` HTTP): each request is answered with the decision.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// Address of the forward-auth listener (ip:port); bind it where only the proxy reaches it.
    pub listen: Str,
    /// The one proxy allowed to describe the original request (required): its header family is
    /// the only one read.
    pub front: Front,
}

/// `forward_auth.front`: which proxy sends the forward-auth requests, and so which headers
/// describe the original request.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Front {
    /// nginx `auth_request`: `X-Original-Method` + `X-Original-URI`, set by the documented
    /// `proxy_set_header` lines.
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Method` + `X-Forwarded-Uri` (+ `X-Forwarded-Host`).
    Traefik,
    /// Envoy `ext_authz` (HTTP service): the forward-auth request's own method and path.
    Envoy,
}
