//! The CLI as a user runs it: `check` on the shipped configs and on broken ones, `token`,
//! `hash-secret`, and `demo` with every printed curl command giving its printed result.

mod common;
use common::*;
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
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
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
    (
        out.status.success(),
        text.replace(&p.display().to_string(), "broken.yaml"),
    )
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
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
            assert!(
                out.status.success(),
                "{line}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
            n += 1;
        }
    }
    assert!(n >= 4, "expected the four vendor examples");
}

#[test]
fn broken_configs_fail_with_file_line_and_field() {
    let head = "version: 1\nupstream:\n  url: \"http://127.0.0.1:3000\"\n";
    // Unknown field.
    let (ok, e) = check(&format!("{head}  timeout: 5\nroutes: []\n"), &[]);
    assert!(!ok);
    assert!(
        e.contains("broken.yaml:4:3: upstream.timeout: unknown field `timeout`"),
        "{e}"
    );
    // Unknown field inside an authenticator.
    let (ok, e) = check(&format!("{head}authenticators:\n  k:\n    type: api_key\n    from: {{header: x-k}}\n    keys: [{{name: a, value: b}}]\n    scheme: x\n"), &[]);
    assert!(!ok);
    assert!(
        e.contains("broken.yaml:9:5: authenticators.k: unknown field `scheme`"),
        "{e}"
    );
    // Unset env var: named, never valued; the line of the reference.
    let (ok, e) = check(
        &format!("{head}authenticators:\n  k:\n    type: api_key\n    from: {{header: x-k}}\n    keys: [{{name: a, value: \"${{KG_UNSET_FOR_TEST}}\"}}]\n"),
        &[],
    );
    assert!(!ok);
    assert!(
        e.contains("broken.yaml:8:")
            && e.contains("environment variable KG_UNSET_FOR_TEST is not set"),
        "{e}"
    );
    // Bad PEM.
    let (ok, e) = check(
        &format!("{head}authenticators:\n  j:\n    type: jwt\n    from: {{header: x-t}}\n    algorithms: [RS256]\n    keys:\n      - kid: k1\n        pem: \"-----BEGIN PUBLIC KEY-----\\nnot base64!\\n-----END PUBLIC KEY-----\"\n"),
        &[],
    );
    assert!(!ok);
    assert!(
        e.contains("broken.yaml:11: authenticators.j.keys[0].pem: bad PEM"),
        "{e}"
    );
    // Private key given where a public key is expected.
    let (ok, e) = check(
        &format!("{head}authenticators:\n  j:\n    type: jwt\n    from: {{header: x-t}}\n    algorithms: [RS256]\n    keys: [{{pem_file: \"{}\"}}]\n", fixture("rsa.key")),
        &[],
    );
    assert!(!ok);
    assert!(
        e.contains("expected a PUBLIC KEY block, found PRIVATE KEY"),
        "{e}"
    );
    // A key that cannot verify any allowed algorithm.
    let (ok, e) = check(
        &format!("{head}authenticators:\n  j:\n    type: jwt\n    from: {{header: x-t}}\n    algorithms: [ES256]\n    keys: [{{pem_file: \"{}\"}}]\n", fixture("rsa.pub")),
        &[],
    );
    assert!(
        !ok && e.contains("cannot verify any of the allowed algorithms"),
        "{e}"
    );
    // alg none.
    let (ok, e) = check(
        &format!("{head}authenticators:\n  j:\n    type: jwt\n    from: {{header: x-t}}\n    algorithms: [none]\n    keys: [{{pem_file: \"{}\"}}]\n", fixture("rsa.pub")),
        &[],
    );
    assert!(
        !ok && e.contains("authenticators.j.algorithms[0]: unsupported algorithm `none`"),
        "{e}"
    );
    // Overlapping routes.
    let (ok, e) = check(
        &format!("{head}routes:\n  - {{name: a, path: \"/u/{{id}}\", auth: anonymous}}\n  - {{name: b, path: \"/u/{{other}}\", methods: [GET], auth: anonymous}}\n"),
        &[],
    );
    assert!(!ok);
    assert!(
        e.contains("broken.yaml:6: routes[1].path: overlaps route `a`"),
        "{e}"
    );
    // Unknown authenticator in a route; bind to a missing parameter.
    let (ok, e) = check(
        &format!("{head}routes:\n  - {{name: a, path: /x, auth: [nope]}}\n"),
        &[],
    );
    assert!(
        !ok && e.contains("routes[0].auth[0]: unknown authenticator `nope`"),
        "{e}"
    );
    // YAML syntax error.
    let (ok, e) = check(&format!("{head}routes: [\n"), &[]);
    assert!(!ok && e.contains("broken.yaml:"), "{e}");
    // A secret of the wrong type is never echoed.
    let (ok, e) = check(
        &format!("{head}authenticators:\n  h:\n    type: hmac_token\n    secret: 918273645546372819\n    token_from: {{header: a}}\n    user_id_from: {{header: b}}\n"),
        &[],
    );
    assert!(!ok && !e.contains("918273645546372819"), "{e}");
    // Nor is an env value.
    let (ok, e) = check(
        &format!("{head}authenticators:\n  h:\n    type: hmac_token\n    secret: \"${{KG_SECRET_T}}\"\n    scheme: sha512\n    token_from: {{header: a}}\n    user_id_from: {{header: b}}\n"),
        &[("KG_SECRET_T", "s3cr3t-value-xyz")],
    );
    assert!(!ok && !e.contains("s3cr3t-value-xyz"), "{e}");
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
        .args([
            "token",
            "jwt",
            "--key",
            &fixture("rsa.key"),
            "--sub",
            "cust-9",
            "--kid",
            DOKA_KID,
        ])
        .args([
            "--claim",
            "type=customer",
            "--claim",
            "workspace_id=ONAVZK8J",
            "--ttl",
            "10m",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let r = kg.get("/api/v1/x", &[("Authorization", &format!("Bearer {tok}"))]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.upstream_header("x-auth-user-id").as_deref(),
        Some("cust-9")
    );
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
    let r = kg.get(
        "/widget/x",
        &[("X-User-Id", "user-5"), ("X-User-Token", &mac)],
    );
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
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ek_ingest_1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        keygate::token::hash_hex(b"ek_ingest_1")
    );
}

#[test]
fn demo_prints_curl_commands_that_give_their_printed_results() {
    let (port, admin) = (free_port(), free_port());
    let mut child = Command::new(bin())
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
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
    let _guard = Kill(child);
    let mut examples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: Option<String> = None;
    while Instant::now() < deadline && examples.len() < 40 {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) else {
            break;
        };
        if let Some(exp) = line.strip_prefix("# expect: ") {
            pending = Some(exp.to_string());
        } else if line.starts_with("curl ") {
            examples.push((
                pending.take().expect("an expectation before each curl"),
                line,
            ));
        }
    }
    assert!(
        examples.len() >= 10,
        "demo printed {} examples",
        examples.len()
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
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
    std::fs::write(
        &cfg,
        Keygate::config_text(
            &full_config("production"),
            "127.0.0.1:9".parse().unwrap(),
            1,
            2,
        ),
    )
    .unwrap();
    let explain = |args: &[&str]| {
        let out = Command::new(bin())
            .args(["explain", "--config"])
            .arg(&cfg)
            .args(args)
            .env("KG_TEST_HMAC_SECRET", HMAC_SECRET)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let user = user_token("user-1");
    let knock = [
        "-H".to_string(),
        "Authorization: Bearer pk_test_1".to_string(),
        "-H".to_string(),
        format!("X-Knock-User-Token: {user}"),
        "-H".to_string(),
        "X-Auth-User-Id: admin".to_string(),
        format!("/v1/users/user-1/feeds/f?user_token={user}"),
    ];
    let knock: Vec<&str> = knock.iter().map(String::as_str).collect();
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
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec![
                "-H".into(),
                "X-User-Id: u1".into(),
                "-H".into(),
                format!("X-User-Token: {hmac}"),
                "/widget/x".into(),
            ],
            0,
            "widget_hmac (hmac_token): passed",
        ),
        (
            vec![
                "-X".into(),
                "POST".into(),
                "-H".into(),
                "X-Client-Key: ck_live_91b2".into(),
                "-H".into(),
                "X-Client-Secret: crm-secret-value".into(),
                "/v1/events/x".into(),
            ],
            0,
            "doka_server (client_secret): passed",
        ),
        (
            vec![
                "-X".into(),
                "POST".into(),
                "-H".into(),
                "Authorization: Bearer ek_ingest_1".into(),
                "/v1/events/x".into(),
            ],
            0,
            "events_key (api_key): passed",
        ),
        (
            vec![
                "-X".into(),
                "POST".into(),
                "-H".into(),
                "Authorization: Bearer ek_wrong_key".into(),
                "/v1/events/x".into(),
            ],
            1,
            "result: 401 invalid_api_key",
        ),
        (
            vec![
                "-H".into(),
                format!("Authorization: Bearer {user}"),
                "/api/v1/x".into(),
            ],
            1,
            "doka_customer (jwt): failed: missing_claim",
        ),
        (vec!["/nowhere".into()], 1, "route: none matches"),
        (
            vec!["-X".into(), "DELETE".into(), "/v1/users/u/feeds/f".into()],
            1,
            "result: 405 method_not_allowed",
        ),
    ];
    for (args, want, line) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out) = explain(&a);
        assert_eq!(code, Some(*want), "{args:?}\n{out}");
        assert!(out.contains(line), "missing {line:?} in\n{out}");
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
