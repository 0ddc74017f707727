//! Activation: what a compiled [`Ruleset`] needs to serve, done once when it goes into force
//! (at start, and after each successful reload, just before the swap). It owns every effect on
//! the process that the compile step avoids: the metric series that must exist before the first
//! request (`keygate_requests_total{outcome="allowed"}` and the duration histogram of each
//! route, each authenticator's `keygate_auth_duration_seconds`), the JWK-set providers' HTTP
//! clients, taking over what the previous ruleset held (the upstream's resolved address, the
//! keys of a provider with the same name and endpoint, so a reload never drops either), and the
//! background tasks (the upstream resolver, one fetch loop per provider).

use std::sync::Arc;

use super::Ruleset;

impl Ruleset {
    /// Puts this ruleset to work, taking over from `old` (the ruleset in force, on a reload).
    /// Call it once, on a tokio runtime (it spawns the upstream resolver and the fetch loops,
    /// which end by themselves once this ruleset is dropped), before the ruleset serves.
    /// Infallible: everything that can be wrong with a config was found by the compile step.
    pub(crate) fn activate(&self, old: Option<&Ruleset>) {
        for route in &self.routes.routes {
            route.counters.bind();
        }
        self.auth_timers.bind();
        if let Some(old) = old {
            self.upstream.adopt(&old.upstream);
        }
        tokio::spawn(crate::upstream::resolve_loop(Arc::downgrade(
            &self.upstream,
        )));
        let previous = old.map(Ruleset::providers).unwrap_or_default();
        for p in self.providers() {
            let prev = previous.iter().find(|o| o.name() == p.name());
            p.activate(prev.map(|p| &**p));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::metrics;

    const DOC: &str = "version: 1
upstream: { url: \"http://127.0.0.1:9\" }
authenticators:
  unit_activate_key:
    type: api_key
    from: { header: x-k }
    keys: [{ name: a, value: b }]
  unit_activate_jwks:
    type: jwt
    from: { header: x-t }
    algorithms: [RS256]
    jwks_url: \"http://127.0.0.1:9/jwks\"
routes:
  - { name: unit_activate_route, path: /x, auth: [unit_activate_key] }
";

    fn rendered() -> String {
        String::from_utf8(metrics().render()).unwrap()
    }

    #[test]
    fn compiling_creates_no_series_and_activation_does() {
        // No runtime: compiling needs none (not even for a JWK-set provider).
        let loaded = crate::ruleset::load_str(DOC, "t.yaml").unwrap();
        let text = rendered();
        assert!(!text.contains("unit_activate"), "{text}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { loaded.rules.activate(None) });
        let text = rendered();
        let allowed = r#"keygate_requests_total{outcome="allowed",reason="none",route="unit_activate_route"} 0"#;
        assert!(text.contains(allowed), "{text}");
        assert!(
            text.contains(r#"authenticator="unit_activate_key""#),
            "{text}"
        );
    }
}
