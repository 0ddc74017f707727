//! Identity headers: removed from every request (authenticated or not), then set from the
//! verified identity, so the backend can trust them blindly.
//!
//! Matching is case-insensitive and treats every character that is not a letter or digit as
//! `-`, so `X_Auth_User_Id` and `X.Auth.User.Id` are stripped too
//! (proxies and servers that map underscores to dashes would otherwise let it through:
//! oauth2-proxy CVE-2025-64484).

use http::header::HeaderName;
use pingora::http::RequestHeader;

use crate::auth::Identity;
use crate::config::{FieldError, IdentityConfig};

/// The compiled `identity:` section.
#[derive(Debug)]
pub(crate) struct IdentityHeaders {
    prefixes: Vec<Vec<u8>>,
    exact: Vec<Vec<u8>>,
    user_id: HeaderName,
    method: HeaderName,
    credential: HeaderName,
    /// (claim name, header) for `identity.claims`.
    claims: Vec<(String, HeaderName)>,
    /// `identity.assertion`: the signed identity, when configured.
    pub(crate) assertion: Option<crate::assertion::Assertion>,
}

fn header(v: &str, path: &str) -> Result<HeaderName, FieldError> {
    HeaderName::from_bytes(v.to_ascii_lowercase().as_bytes())
        .map_err(|_| FieldError::new(path, format!("invalid header name `{v}`")))
}

/// Whether header name `name` is a spelling of `canonical` (lower case letters, digits, `-`):
/// any case, and any other character (`_`, `.`, ...) for `-`. CGI-style servers read them as
/// one header: WSGI's `HTTP_X_AUTH_USER_ID`, PHP (whose variable import also maps `.` to `_`),
/// nginx with `underscores_in_headers`.
pub(crate) fn spelling_of(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len() && name.iter().zip(canonical).all(|(x, y)| *y == fold(*x))
}

/// A header-name byte as [`spelling_of`] compares it.
fn fold(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_lowercase()
    } else {
        b'-'
    }
}

fn normalise(name: &str) -> Vec<u8> {
    name.bytes().map(fold).collect()
}

impl IdentityHeaders {
    /// Compiles `identity:`.
    pub(crate) fn compile(cfg: &IdentityConfig) -> Result<Self, FieldError> {
        let user_id = header(&cfg.user_id_header, "identity.user_id_header")?;
        let method = header(&cfg.method_header, "identity.method_header")?;
        let credential = header(&cfg.credential_header, "identity.credential_header")?;
        let mut claims = Vec::new();
        for (claim, h) in &cfg.claims {
            claims.push((
                claim.clone(),
                header(h, &format!("identity.claims.{claim}"))?,
            ));
        }
        let assertion = cfg
            .assertion
            .as_ref()
            .map(crate::assertion::Assertion::compile)
            .transpose()?;
        let mut exact: Vec<Vec<u8>> = [&user_id, &method, &credential]
            .iter()
            .map(|h| normalise(h.as_str()))
            .collect();
        exact.extend(claims.iter().map(|(_, h)| normalise(h.as_str())));
        exact.extend(assertion.iter().map(|a| normalise(a.header.as_str())));
        let prefixes = cfg
            .strip_prefixes
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| normalise(p))
            .collect();
        Ok(IdentityHeaders {
            prefixes,
            exact,
            user_id,
            method,
            credential,
            claims,
            assertion,
        })
    }

    /// Claim names whose values must be captured for forwarding.
    pub(crate) fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.claims.iter().map(|(c, _)| c.as_str())
    }

    fn is_identity(&self, name: &str) -> bool {
        let n = name.as_bytes();
        self.exact.iter().any(|e| spelling_of(n, e))
            || self
                .prefixes
                .iter()
                .any(|p| n.len() >= p.len() && spelling_of(&n[..p.len()], p))
    }

    /// Removes every identity header (and underscore/case variant) from `req`. Headers the
    /// client names in `Connection` are removed by pingora before the request leaves, and the
    /// identity headers are set after that ([`Self::apply`] in `upstream_request_filter`), so no
    /// `Connection` line can remove what keygate sets.
    pub(crate) fn strip(&self, req: &mut RequestHeader) {
        let doomed: Vec<HeaderName> = req
            .headers
            .keys()
            .filter(|n| self.is_identity(n.as_str()))
            .cloned()
            .collect();
        for n in doomed {
            req.remove_header(&n);
        }
    }

    /// The signed assertion of `id` on route `route` (`identity.assertion`), signed now;
    /// `None` when not configured. A signing failure is an error: the request must not leave
    /// without the assertion the backend expects.
    pub(crate) fn assertion(&self, id: &Identity, route: &str) -> Result<Option<String>, String> {
        match &self.assertion {
            Some(a) => a
                .sign(id, route, crate::metrics::unix_now() as u64)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Sets the identity headers for `id` (allowed on route `route`) on the request leaving for
    /// the upstream (after [`strip`](Self::strip) removed the client's), the signed assertion
    /// included. Values were checked by `Identity::check_forwardable`.
    pub(crate) fn apply(
        &self,
        req: &mut RequestHeader,
        id: &Identity,
        route: &str,
    ) -> pingora::Result<()> {
        for (name, value) in self.headers(id) {
            req.insert_header(name.clone(), value)?;
        }
        // issue 19: the signed identity assertion (src/assertion.rs), signed per request.
        if let Some(a) = &self.assertion {
            let jws = self.assertion(id, route).map_err(|m| {
                tracing::error!(error = %m, "identity assertion not signed: request refused");
                pingora::Error::explain(pingora::ErrorType::InternalError, "assertion not signed")
            })?;
            if let Some(jws) = jws {
                req.insert_header(a.header.clone(), jws)?;
            }
        }
        Ok(())
    }

    /// The identity headers for `id`: user id (when there is one), method, credential, then the
    /// mapped claims present. Values are bytes: UTF-8 user ids travel as obs-text (http's
    /// `from_str` would refuse them); control characters were refused by
    /// `Identity::check_forwardable`.
    pub(crate) fn headers<'a>(
        &'a self,
        id: &'a Identity,
    ) -> impl Iterator<Item = (&'a HeaderName, &'a [u8])> + 'a {
        let user = id.user_id.as_deref().map(|u| (&self.user_id, u.as_bytes()));
        let fixed = [
            (&self.method, id.method.as_bytes()),
            (&self.credential, id.credential.as_bytes()),
        ];
        let claims = self
            .claims
            .iter()
            .filter_map(|(claim, h)| id.claim(claim).map(|v| (h, v.as_bytes())));
        user.into_iter().chain(fixed).chain(claims)
    }

    /// Whether `headers` carries an identity header in any spelling (what the forward-auth
    /// listener refuses as `spoofed_identity`, since it cannot remove it).
    pub(crate) fn any_in(&self, headers: &http::HeaderMap) -> bool {
        headers.keys().any(|n| self.is_identity(n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_spelling_a_backend_reads_as_an_identity_header() {
        let ids = IdentityHeaders::compile(&IdentityConfig::default()).unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for h in [
            "X-Auth-User-Id",
            "x_auth_user_id",
            "X.Auth.User.Id",
            "X_AUTH_ANYTHING",
            "x.auth~workspace",
            "x-auth-method",
            "x-other",
            "xauth-user-id",
        ] {
            req.append_header(h.to_string(), "spoof").unwrap();
        }
        ids.strip(&mut req);
        let left: Vec<_> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
        let mut left = left;
        left.sort();
        assert_eq!(left, vec!["x-other", "xauth-user-id"]);
        let mut dotted = http::HeaderMap::new();
        dotted.insert("x.auth.method", "spoof".parse().unwrap());
        assert!(ids.any_in(&dotted));
        assert!(!ids.any_in(&http::HeaderMap::new()));
    }
}
