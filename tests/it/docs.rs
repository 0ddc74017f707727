//! `docs/config.md` is the configuration reference, so it must stay true:
//! - every ```yaml block in it passes `keygate check` (the first one, "The whole document", as it
//!   is; a block whose first line is `# fragment` merged over it), so a misspelt or removed field
//!   fails here (the schema denies unknown fields); the ```yaml revocations.yaml example is the
//!   `revocations.file` those checks read;
//! - every field of the config schema (`src/config/`) appears in one of those blocks;
//! - its reasons table lists exactly the reasons of `src/reason.rs`, with their statuses, and its
//!   metrics table exactly the families of `src/metrics.rs`, with their types and labels;
//! - its reload section names every restart-only field of `src/settings.rs`;
//! - and no tracked file points at the spec it replaced, outside the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

// A YAML block is read into JSON's value type, and a merged block written back as JSON, which
// is YAML too (1.2), so `keygate check` reads it as it is.
use serde_json::Value;

/// The YAML block `text` as a value (serde-saphyr: the parser keygate itself uses).
fn parse_yaml(text: &str) -> Result<Value, serde_saphyr::Error> {
    serde_saphyr::from_str(text)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn doc() -> String {
    read("docs/config.md")
}

/// A ```yaml block: the line of its opening fence (1-based) and its text.
struct Block {
    line: usize,
    text: String,
}

impl Block {
    fn is_fragment(&self) -> bool {
        self.text.lines().next().map(str::trim) == Some("# fragment")
    }
}

/// Every fenced block whose info string is `yaml` (indented ones too, e.g. inside a list).
fn yaml_blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, bool, String)> = None; // line, indent, yaml, text
    for (i, l) in md.lines().enumerate() {
        let t = l.trim_start();
        let indent = l.len() - t.len();
        match &mut open {
            None => {
                if let Some(info) = t.strip_prefix("```") {
                    open = Some((i + 1, indent, info.trim() == "yaml", String::new()));
                }
            }
            Some((line, ind, yaml, text)) => {
                if t.starts_with("```") {
                    if *yaml {
                        out.push(Block { line: *line, text: std::mem::take(text) });
                    }
                    open = None;
                } else {
                    text.push_str(l.get(*ind..).unwrap_or(t));
                    text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "docs/config.md: an unclosed ``` fence");
    out
}

/// Mappings merge key by key, recursively; anything else in `over` replaces `base`.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Directories the documented configs read files from, recreated under the test's temp dir.
const FILE_ROOTS: [&str; 2] = ["/etc/keygate/", "/var/run/secrets/"];

/// The test file standing for a documented path, chosen by its name (see the comment at the top
/// of docs/config.md).
fn fixture_for(name: &str) -> Vec<u8> {
    let f = |n: &str| std::fs::read(crate::common::fixture(n)).unwrap();
    if name.ends_with(".pub.pem") {
        f("rsa.pub")
    } else if name == "tls.crt" || name == "tls.key" {
        f(name)
    } else if name.ends_with("ca.pem") || name.ends_with("ca.crt") {
        f("ca.crt")
    } else if name.ends_with(".key.pem") {
        f("ec256.key")
    } else if name.ends_with(".json") {
        f("jwks.json")
    } else if name.starts_with("revocations") && name.ends_with(".yaml") {
        revocations_example().into_bytes()
    } else {
        b"docs-test-secret-0123456789abcdef0123456789abcd\n".to_vec()
    }
}

/// The documented `revocations.file` (the ```` ```yaml revocations.yaml ```` block): it stands for
/// every documented revocations file, so `keygate check` of the whole document checks it too.
fn revocations_example() -> String {
    let doc = doc();
    let start = doc.find("```yaml revocations.yaml\n").expect("a revocations.yaml example");
    let body = &doc[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

/// `text` with every documented file path moved under `dir`, where the file is created.
fn with_files(text: &str, dir: &Path) -> String {
    let mut out = text.to_string();
    for root in FILE_ROOTS {
        let mut from = 0;
        while let Some(at) = out[from..].find(root).map(|p| p + from) {
            let len = out[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || "._/-".contains(c)))
                .unwrap_or(out.len() - at);
            let path = out[at..at + len].to_string();
            let local = dir.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(local.parent().unwrap()).unwrap();
            let name = local.file_name().unwrap().to_string_lossy().to_string();
            std::fs::write(&local, fixture_for(&name)).unwrap();
            let local = local.display().to_string();
            out.replace_range(at..at + len, &local);
            from = at + local.len();
        }
    }
    out
}

/// `${NAME}` and `${NAME:-default}` references in `text`: (name, has a default).
fn env_refs(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, _)) => (n, true),
            None => (expr, false),
        };
        out.push((name.to_string(), default));
        rest = &after[end + 1..];
    }
    out
}

/// Runs `keygate check` on `yaml`: `Ok` or the output explaining the failure.
fn check(yaml: &str, path: &Path) -> Result<(), String> {
    std::fs::write(path, yaml).unwrap();
    let mut cmd = Command::new(crate::common::bin());
    cmd.args(["check", "--config"]).arg(path);
    for (name, has_default) in env_refs(yaml) {
        if has_default {
            cmd.env_remove(&name); // the documented default is what is checked
        } else {
            cmd.env(&name, format!("docs-test-{name}-0123456789abcdef0123456789"));
        }
    }
    let out = cmd.output().expect("run keygate check");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

#[test]
fn every_yaml_block_passes_keygate_check() {
    let blocks = yaml_blocks(&doc());
    assert!(blocks.len() >= 10, "only {} yaml blocks found", blocks.len());
    assert!(!blocks[0].is_fragment(), "the first yaml block must be the whole document");
    let dir = tempfile::tempdir().unwrap();
    let whole_text = with_files(&blocks[0].text, dir.path());
    let whole: Value = parse_yaml(&whole_text).expect("the whole document is YAML");
    let mut failures = Vec::new();
    for (n, b) in blocks.iter().enumerate() {
        let text = with_files(&b.text, dir.path());
        let yaml = if b.is_fragment() {
            let fragment: Value = parse_yaml(&text)
                .unwrap_or_else(|e| panic!("docs/config.md:{}: not YAML: {e}", b.line));
            assert!(
                fragment.is_object(),
                "docs/config.md:{}: a fragment must be a mapping",
                b.line
            );
            let mut merged = whole.clone();
            merge(&mut merged, fragment);
            serde_json::to_string_pretty(&merged).unwrap()
        } else {
            text
        };
        let path = dir.path().join(format!("block{n}.yaml"));
        if let Err(e) = check(&yaml, &path) {
            failures.push(format!(
                "docs/config.md:{} ({}): {}",
                b.line,
                if b.is_fragment() { "fragment" } else { "complete" },
                e.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} yaml blocks fail `keygate check`:\n{}",
        failures.len(),
        blocks.len(),
        failures.join("\n")
    );
}

/// Every mapping key in `v`, recursively.
fn keys_of(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                keys_of(v, out);
            }
        }
        Value::Array(s) => s.iter().for_each(|v| keys_of(v, out)),
        _ => {}
    }
}

/// The fields of the config structs: `    pub name: Type,` in the files of `src/config/` (all of
/// them but `error.rs`, whose structs are errors, not schema).
fn schema_fields() -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    let dir = repo().join("src/config");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("error.rs") {
            continue;
        }
        for l in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some((name, _)) = l.strip_prefix("    pub ").and_then(|r| r.split_once(": ")) {
                fields.insert(name.to_string());
            }
        }
    }
    assert!(fields.len() >= 60, "parsed {fields:?}");
    fields
}

#[test]
fn every_schema_field_appears_in_a_checked_block() {
    let fields = schema_fields();
    let mut documented = BTreeSet::new();
    for b in yaml_blocks(&doc()) {
        let v: Value = parse_yaml(&b.text)
            .unwrap_or_else(|e| panic!("docs/config.md:{}: not YAML: {e}", b.line));
        keys_of(&v, &mut documented);
    }
    let missing: Vec<&String> = fields.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "config fields that appear in no yaml block of docs/config.md: {missing:?}"
    );
}

#[test]
fn config_example_names_every_field() {
    // A complete instance: every field is set, or (for alternatives such as `pem` / `pem_file`)
    // named in a comment as `field:`.
    let example = read("config.example.yaml");
    let missing: Vec<String> = schema_fields()
        .into_iter()
        .filter(|f| {
            !example.match_indices(&format!("{f}:")).any(|(i, _)| {
                i == 0
                    || !example.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && example.as_bytes()[i - 1] != b'_'
            })
        })
        .collect();
    assert!(missing.is_empty(), "config.example.yaml never names: {missing:?}");
}

/// The rows of the first Markdown table after the heading `heading`: cells, trimmed.
fn table_after(md: &str, heading: &str) -> Vec<Vec<String>> {
    let start = md
        .lines()
        .position(|l| l.trim() == heading)
        .unwrap_or_else(|| panic!("docs/config.md has no `{heading}` heading"));
    md.lines()
        .skip(start + 1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

/// `` `x` `` -> `x`.
fn code(cell: &str) -> &str {
    cell.trim_matches('`')
}

#[test]
fn reasons_table_is_the_code() {
    use keygate::reason::{IntoEnumIterator, Reason};
    let statuses: BTreeMap<String, String> =
        Reason::iter().map(|r| (r.as_str().to_string(), r.status().to_string())).collect();
    let rows = table_after(&doc(), "### Reasons");
    let documented: BTreeMap<String, String> =
        rows.iter().map(|r| (code(&r[0]).to_string(), r[1].clone())).collect();
    assert_eq!(
        documented.keys().collect::<BTreeSet<_>>(),
        statuses.keys().collect::<BTreeSet<_>>(),
        "docs/config.md `### Reasons` rows vs the reasons of src/reason.rs"
    );
    for (reason, status) in &statuses {
        assert_eq!(&documented[reason], status, "status of `{reason}`");
    }
}

#[test]
fn metrics_table_is_the_code() {
    let src = read("src/metrics.rs");
    let mut families = BTreeMap::new();
    for l in src.lines().map(str::trim) {
        let Some((decl, rest)) = l.split_once(" = (\"keygate_") else {
            continue;
        };
        let name = format!("keygate_{}", rest.split('"').next().unwrap());
        let ty = match decl.rsplit(": ").next().unwrap() {
            "IntCounter" | "IntCounterVec" => "counter",
            "HistogramVec" => "histogram",
            "Gauge" | "GaugeVec" | "IntGauge" | "IntGaugeVec" => "gauge",
            other => panic!("{name}: unknown metric type {other}"),
        };
        let labels: Vec<String> = rest
            .rsplit_once('[')
            .map(|(_, l)| l.split(']').next().unwrap())
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        families.insert(name, (ty, labels));
    }
    assert!(families.len() >= 10, "parsed {families:?}");
    let rows = table_after(&doc(), "## Metrics");
    let documented: BTreeMap<String, &Vec<String>> = rows
        .iter()
        .map(|r| (code(&r[0]).to_string(), r))
        .filter(|(n, _)| n != "process_*")
        .collect();
    assert_eq!(
        documented.keys().collect::<BTreeSet<_>>(),
        families.keys().collect::<BTreeSet<_>>(),
        "docs/config.md `## Metrics` rows vs the families of src/metrics.rs"
    );
    for (name, (ty, labels)) in &families {
        let row = documented[name];
        assert_eq!(row[1], *ty, "type of `{name}`");
        for l in labels {
            assert!(
                row[2].contains(&format!("`{l}`")),
                "label `{l}` of `{name}` is not documented: {}",
                row[2]
            );
        }
        if labels.is_empty() {
            assert_eq!(row[2], "—", "`{name}` has no labels");
        }
    }
}

#[test]
fn reload_section_names_every_restart_only_field() {
    let src = read("src/settings.rs");
    let list = src
        .split_once("const FIELDS: [&'static str; ")
        .and_then(|(_, r)| r.split_once("= ["))
        .and_then(|(_, r)| r.split_once("];"))
        .map(|(l, _)| l)
        .expect("ServerSettings::FIELDS in src/settings.rs");
    let fields: Vec<&str> =
        list.split(',').map(|s| s.trim().trim_matches('"')).filter(|s| !s.is_empty()).collect();
    assert!(fields.len() >= 5, "parsed {fields:?}");
    let md = doc();
    let section = md
        .split_once("\n## Reload and shutdown\n")
        .map(|(_, r)| r.split("\n## ").next().unwrap())
        .expect("a `## Reload and shutdown` section");
    for f in fields {
        assert!(
            section.contains(&format!("`{f}`")),
            "restart-only field `{f}` is not named in `## Reload and shutdown`"
        );
    }
}

#[test]
fn no_tracked_file_points_outside_the_repository_for_the_spec() {
    // Built at compile time so that this file does not contain what it looks for.
    let needles = [concat!("..", "/shared"), concat!("shared", "/spec")];
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo())
        .output()
        .expect("git ls-files (the test needs git and a checkout)");
    assert!(out.status.success(), "git ls-files failed");
    let mut offenders = Vec::new();
    for file in out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = String::from_utf8_lossy(file).to_string();
        let Ok(bytes) = std::fs::read(repo().join(&rel)) else {
            continue; // deleted in the work tree
        };
        if bytes.contains(&0) {
            continue; // binary
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        for (i, l) in text.lines().enumerate() {
            if needles.iter().any(|n| l.contains(n)) {
                offenders.push(format!("{rel}:{}: {}", i + 1, l.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "link docs/config.md instead:\n{}", offenders.join("\n"));
}
