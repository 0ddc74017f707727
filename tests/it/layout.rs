//! The source layout holds: no file in `src/` over 400 lines, every module in a layer, no
//! module importing one in a higher layer, and no import cycle between modules.
//!
//! Layers, lowest first (a module may import its own layer and those below):
//! 0 leaves, 1 config, 2 decisions and their parts, 3 the compiled rules, 4 the request path and
//! operators, 5 the server, 6 the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u8)] = &[
    ("access_log", 0),
    ("reason", 0),
    ("secret", 0),
    ("websocket", 0),
    ("metrics", 0),
    ("config", 1),
    ("auth", 2),
    ("json_body", 2),
    ("condition", 2),
    ("assertion", 2),
    ("identity", 2),
    ("path", 2),
    ("canonical", 2),
    ("form", 2),
    ("routes", 2),
    ("revocation", 2),
    ("revocation_file", 2),
    ("policy", 2),
    ("cors", 2),
    ("forwarding", 2),
    ("throttle", 2),
    ("upstream", 2),
    ("settings", 2),
    ("token", 2),
    ("socketio", 2),
    ("telemetry", 2),
    ("shared", 2),
    ("ruleset", 3),
    ("state", 3),
    ("sessions", 3),
    ("decide", 4),
    ("enforce", 4),
    ("body", 4),
    ("respond", 4),
    ("observe", 4),
    ("conn", 4),
    ("proxy", 4),
    ("forward_auth", 4),
    ("admin", 4),
    ("reload", 4),
    ("explain", 4),
    ("revoke", 4),
    ("logs", 4),
    ("demo", 4),
    ("server", 5),
];

/// `socketio::gate` drives authorization and is part of the request path, unlike the rest of
/// `socketio` (framing and encoding).
/// `sessions::signal` is a leaf any layer pokes; `sessions::registry` runs the sessions of the
/// process over `state`.
const SUBMODULE_LAYERS: &[(&str, u8)] =
    &[("socketio::gate", 4), ("sessions::signal", 0), ("sessions::registry", 4)];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file (`src/auth/jwt/mod.rs` -> `auth::jwt`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .filter(|c| c != "mod")
        .collect();
    parts.join("::")
}

fn layer_of(module: &str) -> Option<u8> {
    SUBMODULE_LAYERS
        .iter()
        .find(|(m, _)| module == *m || module.starts_with(&format!("{m}::")))
        .or_else(|| LAYERS.iter().find(|(m, _)| module.split("::").next() == Some(*m)))
        .map(|(_, l)| *l)
}

/// The crate modules a file imports (`use crate::a::b` and `crate::a::b::f(..)` paths), as the
/// deepest module of the table each names.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String =
        text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let text = code.as_str();
    for (i, _) in text.match_indices("crate::") {
        let rest: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segs: Vec<&str> = rest.split("::").filter(|s| !s.is_empty()).collect();
        if let Some(first) = segs.first() {
            let two = segs.get(1).map(|s| format!("{first}::{s}"));
            match two.filter(|t| SUBMODULE_LAYERS.iter().any(|(m, _)| m == t)) {
                Some(t) => out.insert(t),
                None => out.insert(first.to_string()),
            };
        }
    }
    out
}

#[test]
fn files_are_small_and_modules_import_only_downward_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines = text.lines().count();
        if lines > 400 {
            problems.push(format!("{}: {lines} lines", f.display()));
        }
        let module = module_of(&src, f);
        let test_file =
            f.file_stem().is_some_and(|s| s == "tests" || s.to_string_lossy().ends_with("_tests"));
        if module == "lib" || module == "main" || test_file {
            continue;
        }
        // Tests beside a module may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let Some(layer) = layer_of(&module) else {
            problems.push(format!("{module}: not in the layer table"));
            continue;
        };
        let node = SUBMODULE_LAYERS
            .iter()
            .find(|(m, _)| module.starts_with(m))
            .map_or_else(|| module.split("::").next().unwrap().to_string(), |(m, _)| m.to_string());
        for dep in imports(code) {
            let Some(dl) = layer_of(&dep) else {
                problems.push(format!("{module}: imports unknown module {dep}"));
                continue;
            };
            if dl > layer {
                problems.push(format!("{module} (layer {layer}) imports {dep} (layer {dl})"));
            }
            if dep != node {
                graph.entry(node.clone()).or_default().insert(dep);
            }
        }
    }
    // No cycle between top-level modules (and socketio::gate).
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if let Some(i) = stack.iter().position(|s| s == n) {
            out.push(format!("import cycle: {} -> {n}", stack[i..].join(" -> ")));
            return;
        }
        if !done.insert(n.to_string()) {
            return;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            visit(d, g, stack, done, out);
        }
        stack.pop();
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done, &mut problems);
    }
    assert!(problems.is_empty(), "layout problems:\n{}", problems.join("\n"));
}

/// One enforcement core (`src/enforce/`): no door builds a denial's body, counts a request,
/// observes its duration or writes an access-log line itself.
#[test]
fn only_the_enforcement_core_renders_denials_counts_requests_and_writes_access_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // (needle, where it may appear besides src/enforce/)
    let rules: [(&str, &[&str]); 6] = [
        ("access_log::write(", &["access_log/"]),
        ("reason.body()", &[]),
        (".count(Outcome", &["metrics.rs"]),
        ("observe_duration(", &["metrics.rs"]),
        ("metrics::throttled(", &[]),
        (".throttled\n", &["metrics.rs"]),
    ];
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        let test_file = rel.ends_with("tests.rs") || rel.ends_with("_tests.rs");
        if rel.starts_with("enforce/") || test_file {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (needle, allowed) in &rules {
            if code.contains(needle) && !allowed.iter().any(|a| rel.starts_with(a)) {
                problems.push(format!("src/{rel}: `{}` outside src/enforce/", needle.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
