//! `allow_if`: a CEL condition per route (cel-spec, as Envoy RBAC, Istio and agentgateway use),
//! with the `cel` crate (cel-rust). `docs/config.md`, "Conditions (`allow_if`)".
//!
//! Compiled once at load: parsed, then checked against the variables keygate provides
//! (`claims`, `identity`, `path`, `method`, `query`, `headers`), the functions of the standard
//! library and the types they combine (`check`), so a typo fails `keygate check` with the file
//! and line instead of refusing every request. Per request only the variables the expression
//! names are built, and the compiled program runs over them; false, or an evaluation error
//! (a missing key, a type mismatch at run time), refuses with `condition_failed`.

mod check;

use std::sync::Arc;

use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, ExecutionError, Program, Value as Cel};
use serde_json::Value as Json;

use crate::auth::{Identity, RequestParts};

/// The variables an expression may name, in the order of [`Condition::needs`].
pub(crate) const VARIABLES: [&str; 6] =
    ["claims", "identity", "path", "method", "query", "headers"];

/// Fields of the `identity` variable.
pub(crate) const IDENTITY_FIELDS: [&str; 3] = ["user_id", "method", "credential"];

/// A compiled `allow_if`.
pub(crate) struct Condition {
    /// The expression as configured (for `keygate explain`).
    pub(crate) source: String,
    program: Program,
    env: Arc<Env>,
    /// Which of [`VARIABLES`] it names.
    needs: [bool; 6],
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("source", &self.source)
            .finish()
    }
}

impl Condition {
    /// Parses and checks `source`. Errors say where in the expression (line and column of the
    /// expression itself) and what is wrong; they never quote the expression, which may hold an
    /// expanded `${VAR}`.
    pub(crate) fn compile(source: &str) -> Result<Condition, String> {
        let env = Env::stdlib();
        let program = env.compile(source).map_err(|e| {
            let first = e.errors.first();
            match first {
                Some(p) => format!(
                    "CEL syntax error at line {}, column {} of the expression: {}",
                    p.pos.0,
                    p.pos.1 + 1,
                    p.msg
                ),
                None => "CEL syntax error".to_string(),
            }
        })?;
        check::check(program.expression())?;
        let refs = program.references();
        let needs = VARIABLES.map(|v| refs.has_variable(v));
        Ok(Condition {
            source: source.to_string(),
            program,
            env: Arc::new(env),
            needs,
        })
    }

    /// Whether the expression names `claims` (the identity must then carry the verified
    /// claims).
    pub(crate) fn needs_claims(&self) -> bool {
        self.needs[0]
    }

    /// Evaluates the condition for `id` on the request `req`: `Ok(true)` allows; `Ok(false)`
    /// and `Err` (a value-free description of the evaluation error) refuse.
    pub(crate) fn evaluate(&self, id: &Identity, req: &RequestParts<'_>) -> Result<bool, String> {
        let mut ctx = Context::with_env(self.env.clone());
        for (i, name) in VARIABLES.iter().enumerate() {
            if !self.needs[i] {
                continue;
            }
            let value = match i {
                0 => id.full_claims.as_deref().map_or_else(empty, object),
                1 => identity(id),
                2 => strings(req.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                3 => Cel::String(Arc::new(req.method.as_str().to_string())),
                4 => query(req.query),
                _ => headers(req.headers),
            };
            ctx.add_variable_from_value(*name, value);
        }
        match self.program.execute(&ctx) {
            Ok(Cel::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the expression is a {}, not a bool",
                other.type_of()
            )),
            Err(e) => Err(describe(&e)),
        }
    }
}

fn empty() -> Cel {
    Cel::Map(CelMap::from(std::collections::HashMap::<Key, Cel>::new()))
}

/// A JSON value as CEL sees it: integers that fit `int` are ints (CEL's usual type for JSON
/// numbers that are whole), other numbers doubles or uints.
fn json(v: &Json) -> Cel {
    match v {
        Json::Null => Cel::Null,
        Json::Bool(b) => Cel::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Cel::String(Arc::new(s.clone())),
        Json::Array(a) => Cel::List(Arc::new(a.iter().map(json).collect())),
        Json::Object(m) => object(m),
    }
}

fn object(m: &serde_json::Map<String, Json>) -> Cel {
    let map: std::collections::HashMap<Key, Cel> = m
        .iter()
        .map(|(k, v)| (Key::String(Arc::new(k.clone())), json(v)))
        .collect();
    Cel::Map(CelMap::from(map))
}

fn strings<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Cel {
    let mut map = std::collections::HashMap::<Key, Cel>::new();
    for (k, v) in pairs {
        map.entry(Key::String(Arc::new(k.to_string())))
            .or_insert_with(|| Cel::String(Arc::new(v.to_string())));
    }
    Cel::Map(CelMap::from(map))
}

/// `identity`: `user_id` (absent for an application identity), `method`, `credential`.
fn identity(id: &Identity) -> Cel {
    let mut pairs = vec![("method", &*id.method), ("credential", &*id.credential)];
    if let Some(u) = &id.user_id {
        pairs.push(("user_id", u.as_str()));
    }
    strings(pairs.into_iter())
}

/// `query`: the first value of each name, form-urlencoded decoded.
fn query(q: Option<&str>) -> Cel {
    let decoded: Vec<(String, String)> = q
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    strings(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// `headers`: lower-case names; a repeated header's values joined with `, ` (RFC 9110 §5.3);
/// bytes that are not UTF-8 are replaced.
fn headers(h: &http::HeaderMap) -> Cel {
    let mut map = std::collections::HashMap::<Key, Cel>::new();
    for name in h.keys() {
        let joined = h
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        map.insert(
            Key::String(Arc::new(name.as_str().to_string())),
            Cel::String(Arc::new(joined)),
        );
    }
    Cel::Map(CelMap::from(map))
}

/// What went wrong, without the values involved (a header value may be a credential).
fn describe(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key `{k}`"),
        ExecutionError::UndeclaredReference(r) => format!("undeclared reference `{r}`"),
        ExecutionError::NoSuchOverload(o) => o.to_string(),
        ExecutionError::UnexpectedType { got, want } => format!("got a {got}, want a {want}"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".into(),
        ExecutionError::Overflow(op, _, _) => format!("overflow in `{op}`"),
        ExecutionError::IndexOutOfBounds(_) => "index out of bounds".into(),
        ExecutionError::FunctionError { function, .. } => format!("error in `{function}`"),
        ExecutionError::ValuesNotComparable(..) => "values not comparable".into(),
        _ => "evaluation error".into(),
    }
}

#[cfg(test)]
mod tests;
