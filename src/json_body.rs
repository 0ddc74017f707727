//! JSON request bodies keygate reads (`docs/config.md`, "Bodies keygate reads"): a strict parse
//! and JSON Pointers (RFC 6901) with one extension, a `*` reference token selecting every item
//! of an array (`/user_ids/*`). Pure: bytes and a parsed document in, values or a refusal out.
//!
//! The parse is RFC 8259 JSON as `serde_json` reads it (UTF-8, no trailing data, nesting at most
//! 128 deep) and additionally refuses an object with a repeated member name: parsers disagree
//! on which copy wins (RFC 8259 §4 leaves it open), so a body whose meaning depends on the
//! parser is never judged by keygate's reading of it.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Parses `bytes` as one JSON value, refusing repeated member names.
///
/// Errors: a short description (never the body's content) when the bytes are not JSON, have
/// trailing data, nest too deep or repeat a member name.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Strict(v) = Strict::deserialize(&mut de).map_err(|e| describe(&e))?;
    de.end().map_err(|e| describe(&e))?;
    Ok(v)
}

/// serde_json's message names a position, never content; duplicates say so themselves.
fn describe(e: &serde_json::Error) -> String {
    format!("not JSON ({e})")
}

/// A `Value` deserialized with repeated member names refused.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(k, v).is_some() {
                return Err(de::Error::custom("a member name is repeated"));
            }
        }
        Ok(Value::Object(out))
    }
}

/// One reference token of a [`Pointer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A member name, or an array index (decimal, no leading zero), unescaped (`~1` -> `/`,
    /// `~0` -> `~`).
    Key(String),
    /// `*`: every item of an array.
    Every,
}

/// A JSON Pointer (RFC 6901) whose `*` tokens select every item of an array. Compiled once at
/// load; evaluating one allocates only the list of values it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<Token>,
}

impl Pointer {
    /// Parses `text`: empty (the whole document) or `/`-separated reference tokens, `~0` and
    /// `~1` the only escapes. Errors say what is wrong, e.g. "must start with /".
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "JSON Pointer `{text}` must start with / (RFC 6901)"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                tokens.push(Token::Every);
                continue;
            }
            let mut key = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    key.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => key.push('~'),
                    Some('1') => key.push('/'),
                    _ => {
                        return Err(format!(
                            "JSON Pointer `{text}`: `~` must be followed by 0 or 1 (RFC 6901 §3)"
                        ))
                    }
                }
            }
            tokens.push(Token::Key(key));
        }
        Ok(Pointer {
            text: text.to_string(),
            tokens,
        })
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its reference tokens.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether it has a `*` token (so it may select several values).
    pub fn has_every(&self) -> bool {
        self.tokens.contains(&Token::Every)
    }

    /// Every value the pointer selects in `doc`, in document order; `None` when a step does
    /// not exist (a missing member, an index out of range, a key into a scalar, or `*` over
    /// something other than an array). `*` over an empty array selects nothing.
    pub fn select<'a>(&self, doc: &'a Value) -> Option<Vec<&'a Value>> {
        let mut out = Vec::new();
        walk(doc, &self.tokens, &mut out).then_some(out)
    }

    /// The one value a pointer without `*` selects, if it exists.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        let mut at = doc;
        for t in &self.tokens {
            at = step(at, t)?;
        }
        Some(at)
    }
}

/// One step of a pointer without `*`.
fn step<'a>(at: &'a Value, token: &Token) -> Option<&'a Value> {
    match (at, token) {
        (Value::Object(m), Token::Key(k)) => m.get(k),
        (Value::Array(a), Token::Key(k)) => index(k).and_then(|i| a.get(i)),
        _ => None,
    }
}

/// Collects what `tokens` select under `at` into `out`; false when a step does not exist.
fn walk<'a>(at: &'a Value, tokens: &[Token], out: &mut Vec<&'a Value>) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        out.push(at);
        return true;
    };
    match (first, at) {
        (Token::Every, Value::Array(items)) => items.iter().all(|v| walk(v, rest, out)),
        (Token::Every, _) => false,
        (key, _) => step(at, key).is_some_and(|v| walk(v, rest, out)),
    }
}

/// An array index token: `0`, or decimal digits without a leading zero (RFC 6901 §4).
fn index(token: &str) -> Option<usize> {
    let b = token.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    token.parse().ok()
}

/// `bind_json`: whether every value each pointer selects in `doc` is the string `user_id`. A
/// pointer whose path does not exist, or a value of another type, does not hold.
pub fn all_equal(pointers: &[Pointer], doc: &Value, user_id: &str) -> bool {
    pointers.iter().all(|p| {
        p.select(doc)
            .is_some_and(|vs| vs.iter().all(|v| v.as_str() == Some(user_id)))
    })
}

#[cfg(test)]
#[path = "json_body_tests.rs"]
mod tests;
