//! Revocations: credentials refused before they expire (`docs/config.md`, "Sessions and
//! revocation"). Entries come from `revocations.file` and, with `shared_state`, from
//! `keygate revoke` through Redis; [`Revocations`] is the immutable set in force, swapped whole
//! when either source changes.
//!
//! An entry matches a verified [`Identity`] when every field it sets matches:
//! - `sub`: the identity's user id;
//! - `issued_before` (with `sub`): the credential's `iat` is before the instant, or unknown
//!   (a credential that cannot show when it was issued is refused: fail closed);
//! - `jti`: the JWT's `jti`;
//! - `credential`: `authenticator/key-or-client` as in `x-auth-credential` (any member of an
//!   all-of alternative), or a bare `authenticator` for every credential of it;
//! - `expires_at`: after this instant the entry is ignored.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::auth::Identity;

/// One revocation entry. At least one of `sub`, `jti`, `credential` is set; `issued_before`
/// goes with `sub`. Instants are Unix seconds, written as RFC 3339 in YAML and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Every credential of this user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Only credentials issued (`iat`) before this instant.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::serialize",
        deserialize_with = "rfc3339::deserialize"
    )]
    pub issued_before: Option<i64>,
    /// The JWT with this `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `authenticator/key-or-client`, or `authenticator` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The entry is ignored from this instant on.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::serialize",
        deserialize_with = "rfc3339::deserialize"
    )]
    pub expires_at: Option<i64>,
}

impl Revocation {
    /// Checks the entry's shape; the problem, if any (for `file:entry` errors).
    pub fn validate(&self) -> Result<(), String> {
        let empty = |f: &Option<String>| f.as_deref().is_some_and(str::is_empty);
        if empty(&self.sub) || empty(&self.jti) || empty(&self.credential) {
            return Err("sub, jti and credential must not be empty".into());
        }
        if self.sub.is_none() && self.jti.is_none() && self.credential.is_none() {
            return Err("needs sub, jti or credential".into());
        }
        if self.issued_before.is_some() && self.sub.is_none() {
            return Err("issued_before goes with sub".into());
        }
        Ok(())
    }

    /// A stable id: the first 12 hex digits of the SHA-256 of its JSON form, so the same entry
    /// added twice is one entry (`keygate revoke --list`, `--delete ID`).
    pub fn id(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&crate::secret::sha256(&json)[..6])
    }

    /// Whether it is in force at `now` (Unix seconds).
    pub fn in_force(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// Whether it matches `id` (ignoring `expires_at`; see [`Self::in_force`]).
    pub fn matches(&self, id: &Identity) -> bool {
        if let Some(sub) = &self.sub {
            if id.user_id.as_deref() != Some(sub.as_str()) {
                return false;
            }
        }
        if let Some(before) = self.issued_before {
            if id.issued_at.is_some_and(|iat| iat as i64 >= before) {
                return false;
            }
        }
        if let Some(jti) = &self.jti {
            if id.jti.as_deref() != Some(jti.as_str()) {
                return false;
            }
        }
        if let Some(c) = &self.credential {
            if !credential_matches(c, &id.credential) {
                return false;
            }
        }
        true
    }
}

/// `entry` against an identity's `credential` (`a/k` or `a/k,b/j`).
fn credential_matches(entry: &str, credential: &str) -> bool {
    credential.split(',').any(|member| {
        member == entry
            || (!entry.contains('/')
                && member
                    .strip_prefix(entry)
                    .is_some_and(|rest| rest.starts_with('/') || rest.is_empty()))
    })
}

/// Where an entry came from (the `source` label of `keygate_revocations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `revocations.file`.
    File,
    /// Redis (`keygate revoke` with `shared_state`).
    Shared,
}

impl Source {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Shared => "shared",
        }
    }
}

/// The revocations in force: both sources, indexed by `sub`, `jti` and `credential` so a
/// request's check costs a few hash lookups however long the lists are.
#[derive(Debug, Default)]
pub struct Revocations {
    file: Vec<Revocation>,
    shared: Vec<Revocation>,
    /// (source, index) of every entry by the field it is indexed under.
    by_sub: HashMap<String, Vec<(Source, usize)>>,
    by_jti: HashMap<String, Vec<(Source, usize)>>,
    by_credential: HashMap<String, Vec<(Source, usize)>>,
}

impl Revocations {
    /// The set of `file` and `shared` entries.
    pub fn new(file: Vec<Revocation>, shared: Vec<Revocation>) -> Revocations {
        let mut by_sub: HashMap<String, Vec<(Source, usize)>> = HashMap::new();
        let mut by_jti: HashMap<String, Vec<(Source, usize)>> = HashMap::new();
        let mut by_credential: HashMap<String, Vec<(Source, usize)>> = HashMap::new();
        for (source, list) in [(Source::File, &file), (Source::Shared, &shared)] {
            for (i, e) in list.iter().enumerate() {
                let (map, key) = match (&e.sub, &e.jti, &e.credential) {
                    (Some(s), _, _) => (&mut by_sub, s.clone()),
                    (None, Some(j), _) => (&mut by_jti, j.clone()),
                    (None, None, Some(c)) => {
                        let authenticator = c.split('/').next().unwrap_or(c);
                        (&mut by_credential, authenticator.to_string())
                    }
                    (None, None, None) => continue, // refused by `validate`
                };
                map.entry(key).or_default().push((source, i));
            }
        }
        Revocations {
            file,
            shared,
            by_sub,
            by_jti,
            by_credential,
        }
    }

    /// This set with `source`'s entries replaced by `entries`.
    pub fn with(&self, source: Source, entries: Vec<Revocation>) -> Revocations {
        match source {
            Source::File => Revocations::new(entries, self.shared.clone()),
            Source::Shared => Revocations::new(self.file.clone(), entries),
        }
    }

    /// The entries of `source`.
    pub fn entries(&self, source: Source) -> &[Revocation] {
        match source {
            Source::File => &self.file,
            Source::Shared => &self.shared,
        }
    }

    /// Whether there is no entry at all (the request path then skips the check).
    pub fn is_empty(&self) -> bool {
        self.file.is_empty() && self.shared.is_empty()
    }

    /// The first entry in force at `now` (Unix seconds) that matches `id`, if any.
    pub fn matching(&self, id: &Identity, now: i64) -> Option<&Revocation> {
        if self.is_empty() {
            return None;
        }
        let sub = id.user_id.as_deref().and_then(|u| self.by_sub.get(u));
        let jti = id.jti.as_deref().and_then(|j| self.by_jti.get(j));
        let credential = id.credential.split(',').filter_map(|member| {
            let authenticator = member.split('/').next().unwrap_or(member);
            self.by_credential.get(authenticator)
        });
        sub.into_iter()
            .chain(jti)
            .chain(credential)
            .flatten()
            .map(|&(source, i)| &self.entries(source)[i])
            .find(|e| e.in_force(now) && e.matches(id))
    }
}

/// RFC 3339 instants (`2026-12-07T10:00:00Z`) as Unix seconds.
mod rfc3339 {
    use super::*;
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub(super) fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        let t = v
            .and_then(|v| OffsetDateTime::from_unix_timestamp(v).ok())
            .and_then(|t| t.format(&Rfc3339).ok());
        match t {
            Some(t) => s.serialize_str(&t),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 instant, e.g. 2026-12-07T10:00:00Z")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<i64>, E> {
                parse(v).map(Some).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }

    /// Parses one RFC 3339 instant into Unix seconds.
    pub fn parse(v: &str) -> Result<i64, String> {
        OffsetDateTime::parse(v, &Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|_| format!("`{v}` is not an RFC 3339 instant (2026-12-07T10:00:00Z)"))
    }
}

pub use rfc3339::parse as parse_instant;

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str, credential: &str, iat: Option<u64>, jti: Option<&str>) -> Identity {
        Identity {
            user_id: Some(user.into()),
            issued_at: iat,
            jti: jti.map(Into::into),
            ..Identity::app("jwt".into(), credential.into())
        }
    }

    fn entries(json: &str) -> Vec<Revocation> {
        let v: Vec<Revocation> = serde_json::from_str(json).unwrap();
        v.iter().for_each(|e| e.validate().unwrap());
        v
    }

    #[test]
    fn each_entry_kind_matches_what_it_names_and_nothing_else() {
        let t = parse_instant("2026-12-07T10:00:00Z").unwrap();
        let set = Revocations::new(
            entries(
                r#"[{"sub":"user-1"},
                    {"sub":"user-2","issued_before":"2026-12-07T10:00:00Z"},
                    {"jti":"customer-42"},
                    {"credential":"doka_server/billing"},
                    {"credential":"legacy"},
                    {"sub":"user-3","expires_at":"2026-12-08T00:00:00Z"}]"#,
            ),
            vec![],
        );
        let now = t;
        let hit = |i: &Identity| set.matching(i, now).is_some();
        assert!(hit(&id("user-1", "a/k", None, None)));
        assert!(!hit(&id("user-9", "a/k", None, None)));
        assert!(hit(&id("user-2", "a/k", Some(t as u64 - 1), None)));
        assert!(
            !hit(&id("user-2", "a/k", Some(t as u64), None)),
            "issued at the instant"
        );
        assert!(hit(&id("user-2", "a/k", None, None)), "no iat: fail closed");
        assert!(hit(&id("u", "a/k", None, Some("customer-42"))));
        assert!(!hit(&id("u", "a/k", None, Some("customer-43"))));
        assert!(hit(&id("u", "doka_server/billing", None, None)));
        assert!(hit(&id(
            "u",
            "knock_public/web,doka_server/billing",
            None,
            None
        )));
        assert!(!hit(&id("u", "doka_server/billing2", None, None)));
        assert!(
            hit(&id("u", "legacy/any", None, None)),
            "a bare authenticator"
        );
        assert!(!hit(&id("u", "legacy2/any", None, None)));
        assert!(hit(&id("user-3", "a/k", None, None)));
        let later = parse_instant("2026-12-08T00:00:00Z").unwrap();
        assert!(
            set.matching(&id("user-3", "a/k", None, None), later)
                .is_none(),
            "expired entry"
        );
    }

    #[test]
    fn shapes_ids_and_sources() {
        for bad in [
            r#"{}"#,
            r#"{"issued_before":"2026-12-07T10:00:00Z"}"#,
            r#"{"sub":""}"#,
        ] {
            let e: Revocation = serde_json::from_str(bad).unwrap();
            assert!(e.validate().is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<Revocation>(r#"{"sub":"a","issued_before":"yesterday"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<Revocation>(r#"{"user":"a"}"#).is_err());
        let a: Revocation = serde_json::from_str(r#"{"sub":"a"}"#).unwrap();
        assert_eq!(a.id(), a.clone().id());
        assert_ne!(
            a.id(),
            Revocation {
                sub: Some("b".into()),
                ..a.clone()
            }
            .id()
        );
        let set = Revocations::new(vec![a.clone()], vec![]).with(Source::Shared, vec![a]);
        assert_eq!(
            (
                set.entries(Source::File).len(),
                set.entries(Source::Shared).len()
            ),
            (1, 1)
        );
        let round: Revocation = serde_json::from_str(
            &serde_json::to_string(
                &entries(r#"[{"sub":"x","issued_before":"2026-12-07T10:00:00Z"}]"#)[0],
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            round.issued_before,
            Some(parse_instant("2026-12-07T10:00:00Z").unwrap())
        );
    }
}
