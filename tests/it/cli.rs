//! The CLI as a user runs it: `check` on the shipped configs and on broken ones, `token`,
//! `hash-secret`, and `demo` with every printed curl command giving its printed result.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// Runs a documented shell command line with `keygate` meaning the built binary.
fn run_documented(line: &str) -> std::process::Output {
    let bin = bin();
    let bin_dir = std::path::Path::new(&bin).parent().unwrap();
    Command::new("bash")
        .args(["-c", line])
        .current_dir(repo())
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()))
        .output()
        .unwrap()
}

fn check(yaml: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.yaml");
    std::fs::write(&p, yaml).unwrap();
    let mut c = Command::new(bin());
    c.args(["check", "--config"]).arg(&p);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text.replace(&p.display().to_string(), "broken.yaml"))
}

#[test]
fn shipped_configs_pass_check_with_their_documented_env() {
    let example = std::fs::read_to_string(format!("{}/config.example.yaml", repo())).unwrap();
    let line = example
        .lines()
        .skip_while(|l| !l.contains("KNOCK_PUBLIC_API_KEY=pk_test_123"))
        .take(2)
        .map(|l| l.trim_start_matches('#').trim().trim_end_matches('\\'))
        .collect::<Vec<_>>()
        .join(" ");
    let out = run_documented(&line);
    assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
    let mut n = 0;
    for entry in std::fs::read_dir(format!("{}/examples", repo())).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("# check: "))
                .unwrap_or_else(|| panic!("{} has no `# check:` line", path.display()));
            let out = run_documented(line);
            assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
            n += 1;
        }
    }
    assert!(n >= 4, "expected the four vendor examples");
}

/// One file in `tests/fixtures/broken/`: `keygate check` must fail with every `# expect:` text
/// in its output (paths shortened to the file name) and no `# never:` text; `# env: K=V` lines
/// set the environment, and `${KG_FIXTURES}` is `tests/fixtures`.
struct Broken {
    name: String,
    expect: Vec<String>,
    never: Vec<String>,
    env: Vec<(String, String)>,
}

impl Broken {
    fn load(path: &std::path::Path) -> Broken {
        let text = std::fs::read_to_string(path).unwrap();
        let tagged = |tag: &str| -> Vec<String> {
            text.lines().filter_map(|l| l.strip_prefix(tag).map(str::to_string)).collect()
        };
        Broken {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            expect: tagged("# expect: "),
            never: tagged("# never: "),
            env: tagged("# env: ")
                .iter()
                .map(|kv| kv.split_once('=').unwrap())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

#[test]
fn broken_configs_fail_with_file_line_and_field() {
    let dir = format!("{}/tests/fixtures/broken", repo());
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let case = Broken::load(&path);
        assert!(!case.expect.is_empty(), "{} has no `# expect:` line", case.name);
        let out = Command::new(bin())
            .args(["check", "--config"])
            .arg(&path)
            .env("KG_FIXTURES", format!("{}/tests/fixtures", repo()))
            .envs(case.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let text = (String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout))
            .replace(&format!("{dir}/"), "");
        assert!(!out.status.success(), "{}: check passed", case.name);
        for e in &case.expect {
            assert!(text.contains(e.as_str()), "{}: no `{e}` in: {text}", case.name);
        }
        for secret in &case.never {
            assert!(!text.contains(secret.as_str()), "{}: echoed a secret: {text}", case.name);
        }
        n += 1;
    }
    assert!(n >= 12, "only {n} broken configs");
}

#[test]
fn check_warns_about_a_jwk_set_without_audiences() {
    let head = "version: 1\nupstream:\n  url: \"http://127.0.0.1:3000\"\n";
    let jwt = |extra: &str| {
        format!("{head}authenticators:\n  g:\n    type: jwt\n    from: {{header: authorization, scheme: Bearer}}\n    jwks_url: \"https://idp.test/certs\"\n    issuers: [\"https://idp.test\"]\n    algorithms: [RS256]\n{extra}")
    };
    let (ok, e) = check(&jwt(""), &[]);
    assert!(ok, "a warning does not fail the check: {e}");
    assert!(
        e.contains("warning: authenticators.g: a JWK-set authenticator without `audiences`"),
        "{e}"
    );
    let (ok, e) = check(&jwt("    audiences: [client-1]\n"), &[]);
    assert!(ok && !e.contains("warning"), "{e}");
}

#[test]
fn token_commands_mint_credentials_keygate_accepts() {
    let (_up, kg) = full("production");
    let out = Command::new(bin())
        .args(["token", "jwt", "--key", &fixture("rsa.key"), "--sub", "cust-9", "--kid", DOKA_KID])
        .args(["--claim", "type=customer", "--claim", "workspace_id=ONAVZK8J", "--ttl", "10m"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let r = kg.get("/api/v1/x", &[("Authorization", &format!("Bearer {tok}"))]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("cust-9"));
    // A 20-minute token exceeds DokaAI's 15-minute max lifetime.
    let out = Command::new(bin())
        .args([
            "token",
            "jwt",
            "--key",
            &fixture("rsa.key"),
            "--sub",
            "c",
            "--kid",
            DOKA_KID,
            "--claim",
            "type=customer",
            "--claim",
            "workspace_id=ONAVZK8J",
            "--ttl",
            "20m",
        ])
        .output()
        .unwrap();
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_string();
    kg.get("/api/v1/x", &[("Authorization", &format!("Bearer {tok}"))])
        .assert_denied(401, "claim_mismatch");

    let out = Command::new(bin())
        .args(["token", "hmac", "--user-id", "user-5"])
        .env("KEYGATE_HMAC_SECRET", HMAC_SECRET)
        .output()
        .unwrap();
    let mac = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let r = kg.get("/widget/x", &[("X-User-Id", "user-5"), ("X-User-Token", &mac)]);
    assert_eq!(r.status, 200);
    let out = Command::new(bin())
        .args(["token", "hmac", "--user-id", "u"])
        .env_remove("KEYGATE_HMAC_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());

    let mut child = Command::new(bin())
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ek_ingest_1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        keygate::token::hash_hex(b"ek_ingest_1")
    );
}

/// Starts `keygate demo` on fresh ports with `args`: a guard killing it, and its stdout.
fn demo(args: &[&str]) -> (impl Drop, std::sync::mpsc::Receiver<String>) {
    let (port, admin) = (free_port(), free_port());
    let mut child = Command::new(bin())
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let lines = spawn_line_reader(child.stdout.take().unwrap());
    (Kill(child), lines)
}

#[test]
fn demo_quiet_prints_the_self_check_table_only() {
    let (_guard, lines) = demo(&["--quiet"]);
    let mut out = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(3)) {
        out.push(line);
    }
    let last = out.iter().rev().find(|l| !l.is_empty()).expect("some output");
    assert!(last.ends_with(" passed"), "{out:#?}");
    let (passed, total) = last.trim_end_matches(" passed").split_once('/').unwrap();
    assert_eq!(passed, total, "{out:#?}");
    assert!(out.iter().all(|l| !l.starts_with("curl ") && !l.starts_with("# expect")), "{out:#?}");
}

#[test]
fn demo_prints_curl_commands_that_give_their_printed_results() {
    let (_guard, lines) = demo(&[]);
    let mut table = Vec::new();
    let mut examples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: Option<String> = None;
    while Instant::now() < deadline && examples.len() < 40 {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) else {
            break;
        };
        if line.starts_with("  ok  ") || line.starts_with("  FAIL") || line.ends_with(" passed") {
            table.push(line);
        } else if let Some(exp) = line.strip_prefix("# expect: ") {
            pending = Some(exp.to_string());
        } else if line.starts_with("curl ") {
            examples.push((pending.take().expect("an expectation before each curl"), line));
        }
    }
    assert!(examples.len() >= 10, "demo printed {} examples", examples.len());
    // The self-check table came first: one passing line per example, then the count.
    let n = examples.len();
    assert_eq!(table.len(), n + 1, "{table:#?}");
    assert!(table[..n].iter().all(|l| l.starts_with("  ok  ")), "{table:#?}");
    assert_eq!(table[n], format!("{n}/{n} passed"));
    let mut statuses = std::collections::HashSet::new();
    for (expect, curl) in &examples {
        let mut parts = expect.split_whitespace();
        let status = parts.next().unwrap();
        let detail = parts.next().unwrap();
        let out = run_documented(&format!("{curl} -w '\\n%{{http_code}}'"));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap();
        assert_eq!(code, status, "{curl}\n{body}");
        if detail != "-" {
            assert!(body.contains(detail), "{curl}: expected {detail} in {body}");
        }
        statuses.insert(status.to_string());
    }
    for s in ["200", "401", "403", "400", "405", "204"] {
        assert!(statuses.contains(s), "no example answers {s}");
    }
}

#[test]
fn explain_shows_the_decision_without_echoing_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("k.yaml");
    std::fs::write(&cfg, Keygate::builder().config(full_config("production")).text()).unwrap();
    // `args` is a command line, split as a shell would.
    let explain = |args: &str| {
        let out = Command::new(bin())
            .args(["explain", "--config"])
            .arg(&cfg)
            .args(shlex::split(args).expect("a shell-like command line"))
            .env("KG_TEST_HMAC_SECRET", HMAC_SECRET)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let user = user_token("user-1");
    let knock = format!(
        "-H 'Authorization: Bearer pk_test_1' -H 'X-Knock-User-Token: {user}' \
         -H 'X-Auth-User-Id: admin' '/v1/users/user-1/feeds/f?user_token={user}'"
    );
    let (code, out) = explain(&knock);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "route: knock_feed (/v1/users/{user_id}/feeds/{feed_id}, GET, HEAD)",
        "  knock_public (public_key): passed",
        "  knock_user (jwt): passed",
        "  x-auth-user-id: user-1",
        "  x-auth-method: public_key+jwt",
        "removed client-sent identity header x-auth-user-id",
        "user_token=…",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let hmac = hmac_token("u1");
    /// One `keygate explain` run: its exit code and a line its output must contain.
    struct Explained {
        args: String,
        exit: i32,
        shows: &'static str,
    }
    let row = |args: &str, exit, shows| Explained { args: args.to_string(), exit, shows };
    let cases = [
        Explained {
            args: format!("-H 'X-User-Id: u1' -H 'X-User-Token: {hmac}' /widget/x"),
            exit: 0,
            shows: "widget_hmac (hmac_token): passed",
        },
        row(
            "-X POST -H 'X-Client-Key: ck_live_91b2' -H 'X-Client-Secret: crm-secret-value' /v1/events/x",
            0,
            "doka_server (client_secret): passed",
        ),
        row("-X POST -H 'Authorization: Bearer ek_ingest_1' /v1/events/x", 0, "events_key (api_key): passed"),
        row("-X POST -H 'Authorization: Bearer ek_wrong_key' /v1/events/x", 1, "result: 401 invalid_api_key"),
        Explained {
            args: format!("-H 'Authorization: Bearer {user}' /api/v1/x"),
            exit: 1,
            shows: "doka_customer (jwt): failed: missing_claim",
        },
        row("/nowhere", 1, "route: none matches"),
        row("-X DELETE /v1/users/u/feeds/f", 1, "result: 405 method_not_allowed"),
    ];
    for Explained { args, exit, shows } in &cases {
        let (code, out) = explain(args);
        assert_eq!(code, Some(*exit), "{args}\n{out}");
        assert!(out.contains(shows), "missing {shows:?} in\n{out}");
        for secret in [
            user.as_str(),
            "pk_test_1",
            "crm-secret-value",
            "ek_ingest_1",
            "ek_wrong_key",
            hmac.as_str(),
        ] {
            assert!(!out.contains(secret), "{secret} echoed in\n{out}");
        }
    }
    assert!(!out.contains(&user) && !out.contains("pk_test_1"), "{out}");
}
