//! Where in the YAML text a field path is: best-effort line numbers for errors, for block- and
//! flow-style YAML alike.

use super::{ConfigError, FieldError};

pub(super) fn refine(text: &str, line: usize, column: usize, message: &str) -> (usize, usize) {
    let needle = if let Some(rest) = message.strip_prefix("environment variable ") {
        rest.split(' ').next().map(|v| format!("${{{v}"))
    } else if let Some(rest) = message.strip_prefix("unknown field `") {
        rest.split('`').next().map(|f| format!("{f}:"))
    } else {
        None
    };
    let Some(needle) = needle else {
        return (line, column);
    };
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .find_map(|(i, l)| l.find(&needle).map(|c| (i + 1, c + 1)))
        .unwrap_or((line, column))
}

/// Turns a compile-time [`FieldError`] into a [`ConfigError`] with the line of its field.
pub fn locate_error(text: &str, file: &str, e: FieldError) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        line: locate(text, &e.path),
        path: e.path,
        message: e.message,
    }
}

/// Best-effort line (1-based) of a dotted field path (`a.b[2].c`) in block- or flow-style YAML.
/// Falls back to the deepest ancestor found; never fails.
pub fn locate(text: &str, path: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut cur = 0usize; // index of the line of the current node
    let mut indent: isize = -1; // indentation of the current node's key
    let mut inline_from = 0usize; // byte offset within `cur` where the current node begins
    for seg in split_path(path) {
        match seg {
            Seg::Key(key) => {
                let needle = format!("{key}:");
                // Same line first (flow style), after the current node's start.
                if let Some(l) = lines.get(cur) {
                    if let Some(pos) = find_key(&l[inline_from.min(l.len())..], &needle) {
                        inline_from += pos + needle.len();
                        continue;
                    }
                }
                let mut found = false;
                for (i, ind, t) in significant_lines(&lines, cur + 1) {
                    let l = lines[i];
                    if ind <= indent {
                        break;
                    }
                    let body = t.trim_start_matches("- ");
                    if body.starts_with(&needle)
                        || find_key(t, &needle).is_some() && t.starts_with('-')
                    {
                        cur = i;
                        indent = ind;
                        inline_from = l.find(&needle).map(|p| p + needle.len()).unwrap_or(0);
                        found = true;
                        break;
                    }
                }
                if !found {
                    break;
                }
            }
            Seg::Index(n) => {
                let mut seen = 0usize;
                let mut item_indent: Option<isize> = None;
                let mut found = false;
                for (i, ind, t) in significant_lines(&lines, cur + 1) {
                    let l = lines[i];
                    if ind < indent || (ind == indent && !t.starts_with('-')) {
                        break;
                    }
                    if t.starts_with('-') && item_indent.is_none_or(|x| x == ind) {
                        item_indent = Some(ind);
                        if seen == n {
                            cur = i;
                            indent = ind;
                            inline_from = (l.len() - t.len()) + 1;
                            found = true;
                            break;
                        }
                        seen += 1;
                    }
                }
                if !found {
                    break;
                }
            }
        }
    }
    cur + 1
}

/// Lines from `from` on that are neither blank nor comments: (index, indentation, trimmed text).
fn significant_lines<'a>(
    lines: &'a [&'a str],
    from: usize,
) -> impl Iterator<Item = (usize, isize, &'a str)> {
    lines.iter().enumerate().skip(from).filter_map(|(i, l)| {
        let t = l.trim_start();
        (!t.is_empty() && !t.starts_with('#')).then(|| (i, (l.len() - t.len()) as isize, t))
    })
}

fn find_key(hay: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = hay[from..].find(needle) {
        let at = from + p;
        let before = hay[..at].chars().last();
        if before.is_none_or(|c| c == '{' || c == ',' || c == ' ' || c == '-') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(n) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(n));
            }
        }
    }
    out
}
