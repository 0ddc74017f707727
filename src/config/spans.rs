//! Where each field of a YAML document is: a field path (`routes[1].path`, the spelling of
//! `serde_path_to_error` and of [`super::FieldError`]) -> the line and column of its key (or, for
//! a list item, of the item), read from the parser's own spans (granit-parser, the parser under
//! serde-saphyr). Built only when an error needs placing, never on a successful load.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

/// 1-based line and column.
pub(crate) type Place = (usize, usize);

/// The places of every field of one document.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    /// Field path -> where its key (or list item) starts.
    places: HashMap<String, Place>,
    /// Scalars that reference an environment variable: (field path, place, variable names).
    env_refs: Vec<(String, Place, Vec<String>)>,
}

/// An open mapping or list while walking the events.
enum Frame {
    /// A mapping at `path`; `key` is the key whose value comes next, if any.
    Map { path: String, key: Option<String> },
    /// A list at `path`; `next` is the index of its next item.
    Seq { path: String, next: usize },
}

impl Spans {
    /// Indexes `text`. Stops at the first syntax error (what was read so far stays indexed);
    /// never fails.
    pub(crate) fn of(text: &str) -> Spans {
        let mut spans = Spans::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let at = (span.start.line(), span.start.col() + 1);
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map {
                        path,
                        key: k @ None,
                    }) = stack.last_mut()
                    {
                        let field = join(path, &value);
                        spans.places.entry(field.clone()).or_insert(at);
                        *k = Some(field);
                        continue;
                    }
                    let path = spans.enter(&mut stack, at);
                    let vars = env_vars(&value);
                    if !vars.is_empty() {
                        spans.env_refs.push((path, at, vars));
                    }
                    advance(&mut stack);
                }
                Event::Alias(_) => {
                    spans.enter(&mut stack, at);
                    advance(&mut stack);
                }
                Event::MappingStart(..) => {
                    let path = spans.enter(&mut stack, at);
                    stack.push(Frame::Map { path, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = spans.enter(&mut stack, at);
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    advance(&mut stack);
                }
                _ => {}
            }
        }
        spans
    }

    /// The path of a node starting at `at` under the innermost open container, recorded when
    /// it is a list item (a mapping value was recorded at its key).
    fn enter(&mut self, stack: &mut [Frame], at: Place) -> String {
        match stack.last() {
            None => String::new(),
            Some(Frame::Map { path, key }) => key.clone().unwrap_or_else(|| join(path, "?")),
            Some(Frame::Seq { path, next }) => {
                let item = format!("{path}[{next}]");
                self.places.entry(item.clone()).or_insert(at);
                item
            }
        }
    }

    /// Where field `path` is; a path not in the document gives its deepest ancestor that is
    /// (`None` only for a document with no fields at all).
    pub(crate) fn place(&self, path: &str) -> Option<Place> {
        let mut p = path;
        loop {
            if let Some(at) = self.places.get(p) {
                return Some(*at);
            }
            p = &p[..p.rfind(['.', '['])?];
        }
    }

    /// The exact place of field `path`, if the document has it.
    pub(crate) fn exact(&self, path: &str) -> Option<Place> {
        self.places.get(path).copied()
    }

    /// The first scalar at or under `path` that references environment variable `var`.
    pub(crate) fn env_ref(&self, path: &str, var: &str) -> Option<Place> {
        self.env_refs
            .iter()
            .find(|(p, _, vars)| within(p, path) && vars.iter().any(|v| v == var))
            .map(|(_, at, _)| *at)
    }
}

/// The mapping or list holding the node just finished moves on to its next entry.
fn advance(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { key, .. }) => *key = None,
        Some(Frame::Seq { next, .. }) => *next += 1,
        None => {}
    }
}

/// `parent.key`, or `key` at the root.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Whether field `p` is `path` or lies under it.
fn within(p: &str, path: &str) -> bool {
    path.is_empty()
        || p.strip_prefix(path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The names in `${NAME}` / `${NAME:-default}` references of a scalar.
fn env_vars(value: &str) -> Vec<String> {
    value
        .split("${")
        .skip(1)
        .map(|r| {
            let end = r.find([':', '}']).unwrap_or(r.len());
            r[..end].to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nupstream:\n  url: x\nauthenticators:\n  a:\n    type: jwt\n    keys:\n      - { kid: k1, pem_file: /a }\n      - kid: k2\n        pem_file: \"${KEY_B}\"\nroutes:\n  - name: r\n    path: /x\n";

    #[test]
    fn places_block_and_flow_fields_exactly() {
        let s = Spans::of(DOC);
        assert_eq!(s.place("upstream.url"), Some((3, 3)));
        assert_eq!(s.place("authenticators.a.keys[0]"), Some((8, 9)));
        assert_eq!(s.place("authenticators.a.keys[0].pem_file"), Some((8, 20)));
        assert_eq!(s.place("authenticators.a.keys[1].pem_file"), Some((10, 9)));
        assert_eq!(s.place("routes[0].path"), Some((13, 5)));
        // Not in the document: its deepest ancestor that is.
        assert_eq!(s.place("routes[5].path"), Some((11, 1)));
        assert_eq!(s.place("routes[0].auth"), Some((12, 5)));
        assert_eq!(s.exact("routes[0].auth"), None);
        assert_eq!(s.env_ref("authenticators.a", "KEY_B"), Some((10, 19)));
        assert_eq!(s.env_ref("routes", "KEY_B"), None);
    }

    #[test]
    fn a_broken_document_keeps_what_was_read() {
        let s = Spans::of("version: 1\nroutes: [\n  {name: a}\n");
        assert_eq!(s.place("version"), Some((1, 1)));
        assert_eq!(s.place("nothing.here"), None);
    }
}
