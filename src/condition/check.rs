//! The load-time check of an `allow_if` program (cel-rust has a parser and an interpreter but no
//! checker): every variable is one keygate provides, every function one of the standard
//! library, `identity` has only its three fields, and operands of known type fit their operator
//! (`"a" + 1`, `!path`, `method.x` fail). Types are inferred bottom-up; what depends on the
//! request (`claims.*`, map lookups) is `dyn` and checked when evaluated. The result must be a
//! bool (or `dyn`).

use cel::common::ast::{operators as op, EntryExpr, Expr, IdedExpr, LiteralValue};

use super::{IDENTITY_FIELDS, VARIABLES};

/// A statically known CEL type; `Dyn` when it depends on the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    List,
    Map,
    Dyn,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Uint => "uint",
            Ty::Double => "double",
            Ty::String => "string",
            Ty::Bytes => "bytes",
            Ty::Null => "null",
            Ty::List => "list",
            Ty::Map => "map",
            Ty::Dyn => "dyn",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double | Ty::Dyn)
    }

    /// Whether a value of this type may be where `want` is expected.
    fn fits(self, want: Ty) -> bool {
        self == want || self == Ty::Dyn || want == Ty::Dyn
    }
}

/// Standard-library functions (cel-spec "List of Standard Definitions") that cel-rust
/// provides without extensions; `has`, `all`, `exists`, `exists_one`, `map` and `filter` are
/// macros and arrive expanded.
const FUNCTIONS: [&str; 19] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "hasValue",
    "value",
    "orValue",
    "or",
    "optional.of",
    "optional.none",
];

/// Type names usable as values (`type(x) == string`).
const TYPE_NAMES: [&str; 10] = [
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "list",
    "map",
    "null_type",
    "type",
];

/// Checks `expr`; the error says what is wrong.
pub(super) fn check(expr: &IdedExpr) -> Result<(), String> {
    let mut scope = Vec::new();
    match infer(expr, &mut scope)? {
        Ty::Bool | Ty::Dyn => Ok(()),
        t => Err(format!("the expression is a {}, not a bool", t.name())),
    }
}

fn infer(e: &IdedExpr, scope: &mut Vec<String>) -> Result<Ty, String> {
    Ok(match &e.expr {
        Expr::Unspecified => Ty::Dyn,
        Expr::Literal(l) => match l {
            LiteralValue::Boolean(_) => Ty::Bool,
            LiteralValue::Bytes(_) => Ty::Bytes,
            LiteralValue::Double(_) => Ty::Double,
            LiteralValue::Int(_) => Ty::Int,
            LiteralValue::Null => Ty::Null,
            LiteralValue::String(_) => Ty::String,
            LiteralValue::UInt(_) => Ty::Uint,
        },
        Expr::Ident(name) => ident(name, scope)?,
        Expr::Select(s) => {
            let operand = infer(&s.operand, scope)?;
            if !operand.fits(Ty::Map) {
                return Err(format!("`.{}` on a {}", s.field, operand.name()));
            }
            if matches!(&s.operand.expr, Expr::Ident(n) if n == "identity" && !scope.contains(n))
                && !IDENTITY_FIELDS.contains(&s.field.as_str())
            {
                return Err(format!(
                    "identity has no field `{}` (it has user_id, method, credential)",
                    s.field
                ));
            }
            match (&s.operand.expr, s.test) {
                (_, true) => Ty::Bool,
                (Expr::Ident(n), false) if is_string_map(n, scope) => Ty::String,
                _ => Ty::Dyn,
            }
        }
        Expr::List(l) => {
            for el in &l.elements {
                infer(el, scope)?;
            }
            Ty::List
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(me) => {
                        infer(&me.key, scope)?;
                        infer(&me.value, scope)?;
                    }
                    EntryExpr::StructField(_) => return Err("struct fields in a map".into()),
                }
            }
            Ty::Map
        }
        Expr::Struct(s) => return Err(format!("message type `{}` is not available", s.type_name)),
        Expr::Comprehension(c) => {
            let range = infer(&c.iter_range, scope)?;
            if !(range.fits(Ty::List) || range.fits(Ty::Map)) {
                return Err(format!("cannot iterate over a {}", range.name()));
            }
            let mark = scope.len();
            scope.push(c.iter_var.clone());
            scope.extend(c.iter_var2.clone());
            scope.push(c.accu_var.clone());
            infer(&c.accu_init, scope)?;
            infer(&c.loop_cond, scope)?;
            infer(&c.loop_step, scope)?;
            let out = infer(&c.result, scope)?;
            scope.truncate(mark);
            out
        }
        Expr::Call(call) => {
            let mut args = Vec::with_capacity(call.args.len() + 1);
            if let Some(t) = &call.target {
                args.push(infer(t, scope)?);
            }
            for a in &call.args {
                args.push(infer(a, scope)?);
            }
            self::call(&call.func_name, &args, call.target.is_some())?
        }
    })
}

/// `path`, `query`, `headers` and `identity` map names to strings.
fn is_string_map(name: &str, scope: &[String]) -> bool {
    !scope.iter().any(|s| s == name) && matches!(name, "path" | "query" | "headers" | "identity")
}

fn ident(name: &str, scope: &[String]) -> Result<Ty, String> {
    if scope.iter().any(|s| s == name) || name.starts_with('@') {
        return Ok(Ty::Dyn);
    }
    match name {
        "claims" | "identity" | "path" | "query" | "headers" => Ok(Ty::Map),
        "method" => Ok(Ty::String),
        n if TYPE_NAMES.contains(&n) => Ok(Ty::Dyn),
        n => Err(format!(
            "unknown variable `{n}` (allow_if sees {})",
            VARIABLES.join(", ")
        )),
    }
}

/// The result type of `name` applied to `args` (the target first for a member call).
fn call(name: &str, args: &[Ty], member: bool) -> Result<Ty, String> {
    let all = |want: Ty| args.iter().all(|a| a.fits(want));
    let mismatch = || {
        let types: Vec<&str> = args.iter().map(|a| a.name()).collect();
        Err(format!("no `{}` for ({})", pretty(name), types.join(", ")))
    };
    Ok(match name {
        op::LOGICAL_AND | op::LOGICAL_OR | op::LOGICAL_NOT | op::NOT_STRICTLY_FALSE => {
            if !all(Ty::Bool) {
                return mismatch();
            }
            Ty::Bool
        }
        op::EQUALS | op::NOT_EQUALS => Ty::Bool,
        op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS => {
            let comparable = match (args[0], args[1]) {
                (a, b) if a == Ty::Dyn || b == Ty::Dyn || a == b => true,
                (a, b) => a.numeric() && b.numeric(),
            };
            if !comparable
                || args
                    .iter()
                    .any(|a| matches!(a, Ty::List | Ty::Map | Ty::Null))
            {
                return mismatch();
            }
            Ty::Bool
        }
        op::ADD => match (args[0], args[1]) {
            (Ty::Dyn, _) | (_, Ty::Dyn) => Ty::Dyn,
            (a, b) if a == b && a != Ty::Bool && a != Ty::Null && a != Ty::Map => a,
            _ => return mismatch(),
        },
        op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO | op::NEGATE => {
            if !args.iter().all(|a| a.numeric()) {
                return mismatch();
            }
            args.iter()
                .copied()
                .find(|a| *a != Ty::Dyn)
                .unwrap_or(Ty::Dyn)
        }
        op::INDEX | op::OPT_INDEX => {
            if !(args[0].fits(Ty::Map) || args[0].fits(Ty::List)) {
                return mismatch();
            }
            Ty::Dyn
        }
        op::IN => {
            if !(args[1].fits(Ty::Map) || args[1].fits(Ty::List)) {
                return mismatch();
            }
            Ty::Bool
        }
        op::CONDITIONAL => {
            if !args[0].fits(Ty::Bool) {
                return mismatch();
            }
            if args[1] == args[2] {
                args[1]
            } else {
                Ty::Dyn
            }
        }
        op::OPT_SELECT => Ty::Dyn,
        "contains" | "startsWith" | "endsWith" | "matches" if member => {
            if !all(Ty::String) || args.len() != 2 {
                return mismatch();
            }
            Ty::Bool
        }
        "size" => Ty::Int,
        "int" => Ty::Int,
        "uint" => Ty::Uint,
        "double" => Ty::Double,
        "string" => Ty::String,
        "bytes" => Ty::Bytes,
        "bool" => Ty::Bool,
        n if FUNCTIONS.contains(&n) => Ty::Dyn,
        n => return Err(format!("unknown function `{n}`")),
    })
}

/// An operator as written (`_+_` -> `+`, `@in` -> `in`).
fn pretty(name: &str) -> &str {
    match name {
        op::IN => "in",
        n => n.trim_matches('_'),
    }
}
