//! Scalar types of the config schema: strings with `${VAR}` / `${VAR:-default}` expansion,
//! secrets that never appear in an error, and "one source or a list of sources".
//!
//! Expansion happens while deserializing each string, so an error (unset variable) carries the
//! YAML line and the field path, and an env value can never inject YAML structure.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

use crate::secret::Secret;

/// Expands `${VAR}` and `${VAR:-default}` in `input` from the process environment.
///
/// Errors: `environment variable NAME is not set` (never the value), or an unterminated `${`.
pub fn expand_env(input: &str) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` in value".to_string())?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "invalid environment variable reference `${{{name}}}`"
            ));
        }
        match (std::env::var(name), default) {
            (Ok(v), _) if !(v.is_empty() && default.is_some()) => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (Err(_), None) => return Err(format!("environment variable {name} is not set")),
            (Ok(v), None) => out.push_str(&v),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A config string after env expansion.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Str(pub String);

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
                expand_env(v).map(Str).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A secret config string after env expansion. Any type error names the expected type only,
/// never the value that was found (serde's default messages would echo it).
#[derive(Debug, Clone, Default)]
pub struct SecretStr(pub Secret);

impl<'de> Deserialize<'de> for SecretStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const WRONG: &str = "expected a string (value not shown: it is secret)";
        impl<'de> Visitor<'de> for V {
            type Value = SecretStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a secret string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretStr, E> {
                expand_env(v)
                    .map(|s| SecretStr(Secret::new(s)))
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretStr, E> {
                Err(E::custom(WRONG))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretStr, E> {
                Err(E::custom(WRONG))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretStr, E> {
                Err(E::custom(WRONG))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretStr, E> {
                Err(E::custom(WRONG))
            }
            fn visit_unit<E: de::Error>(self) -> Result<SecretStr, E> {
                Err(E::custom(WRONG))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<SecretStr, A::Error> {
                Err(de::Error::custom(WRONG))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<SecretStr, A::Error> {
                Err(de::Error::custom(WRONG))
            }
        }
        d.deserialize_any(V)
    }
}

/// `x` or `[x, y]` in the YAML, always a list after loading.
#[derive(Debug, Clone)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|v| OneOrMany(vec![v]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::<E>::new(v)).map(|v| OneOrMany(vec![v]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                T::deserialize(de::value::BoolDeserializer::<E>::new(v)).map(|v| OneOrMany(vec![v]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(de::value::I64Deserializer::<E>::new(v)).map(|v| OneOrMany(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(de::value::U64Deserializer::<E>::new(v)).map(|v| OneOrMany(vec![v]))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_set_unset_and_default() {
        std::env::set_var("KEYGATE_TEST_EXPAND", "v1");
        assert_eq!(expand_env("a${KEYGATE_TEST_EXPAND}b").unwrap(), "av1b");
        assert_eq!(expand_env("${KEYGATE_TEST_NOPE:-d}").unwrap(), "d");
        let err = expand_env("${KEYGATE_TEST_NOPE}").unwrap_err();
        assert_eq!(err, "environment variable KEYGATE_TEST_NOPE is not set");
        assert!(expand_env("${OOPS").is_err());
        assert_eq!(expand_env("no vars").unwrap(), "no vars");
    }
}
