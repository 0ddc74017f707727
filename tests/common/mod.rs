//! Integration-test harness: the real `keygate` binary on 127.0.0.1 ephemeral ports in front of
//! the real echo upstream, a raw HTTP/1.1 client (so paths are sent byte for byte), and tokens
//! signed with the committed fixture keys.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

pub use keygate::demo::echo::{self, Echo};

pub mod attack;
pub mod jwks_server;
pub mod nginx;
pub mod programs;
#[allow(unused_imports)]
pub use programs::Program;

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The keygate binary under test: this build's, or `KEYGATE_BIN` (e.g. a release build).
pub fn bin() -> String {
    std::env::var("KEYGATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_keygate").to_string())
}

/// A running keygate process, killed on drop.
pub struct Keygate {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Keygate {
    /// Starts keygate with `body` (a config without version/listen/admin_listen/upstream)
    /// in front of `upstream`.
    pub fn start(body: &str, upstream: SocketAddr) -> Keygate {
        Self::start_with_env(body, upstream, &[])
    }

    /// The full config text for `body` on the given ports, in front of `upstream`.
    pub fn config_text(body: &str, upstream: SocketAddr, port: u16, admin_port: u16) -> String {
        Self::config_text_upstream(
            body,
            &format!("url: \"http://{upstream}\""),
            port,
            admin_port,
        )
    }

    /// The full config text with `upstream_map` as the inside of `upstream: { ... }`.
    pub fn config_text_upstream(
        body: &str,
        upstream_map: &str,
        port: u16,
        admin_port: u16,
    ) -> String {
        let grace = if body.contains("shutdown_grace_seconds") {
            ""
        } else {
            "shutdown_grace_seconds: 1\n"
        };
        format!(
            "version: 1\nlisten: \"127.0.0.1:{port}\"\nadmin_listen: \"127.0.0.1:{admin_port}\"\nupstream: {{ {upstream_map}, connect_timeout_ms: 500 }}\n{grace}{body}"
        )
    }

    /// Starts keygate with `body` and `upstream: { <upstream_map> }` (e.g. an https URL and
    /// `ca_file`).
    pub fn start_upstream(body: &str, upstream_map: &str) -> Keygate {
        let (port, admin_port) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yaml");
        std::fs::write(
            &cfg,
            Self::config_text_upstream(body, upstream_map, port, admin_port),
        )
        .unwrap();
        Self::launch(dir, &cfg, port, admin_port, &[], "info")
    }

    pub fn start_with_env(body: &str, upstream: SocketAddr, env: &[(&str, &str)]) -> Keygate {
        let port = free_port();
        let admin_port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, Self::config_text(body, upstream, port, admin_port)).unwrap();
        Self::launch(dir, &cfg, port, admin_port, env, "info")
    }

    /// Runs keygate on an existing config file `cfg` (listening on the given ports).
    pub fn launch(
        dir: tempfile::TempDir,
        cfg: &std::path::Path,
        port: u16,
        admin_port: u16,
        env: &[(&str, &str)],
        level: &str,
    ) -> Keygate {
        let log = dir.path().join("keygate.log");
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--config"])
            .arg(cfg)
            .env("KEYGATE_LOG", level)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn keygate");
        let kg = Keygate {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            admin: format!("127.0.0.1:{admin_port}").parse().unwrap(),
            dir,
            log,
        };
        kg.wait_ready();
        kg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(self.addr).is_ok() && TcpStream::connect(self.admin).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "keygate did not start: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        request(self.addr, "GET", path, headers, b"")
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(self.addr, "POST", path, headers, body)
    }

    pub fn admin_get(&self, path: &str) -> Resp {
        request(self.admin, "GET", path, &[], b"")
    }

    /// The value of a metric line (exact series, e.g. `keygate_jwks_keys{authenticator="g"}`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.admin_get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
    }

    /// The `/metrics` text once it contains every needle (counters are updated just after a
    /// response is written, so a scrape may briefly lag the client); panics after 5 s.
    pub fn metrics_with(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let m = self.admin_get("/metrics").text();
            let missing: Vec<&&str> = needles.iter().filter(|n| !m.contains(**n)).collect();
            if missing.is_empty() {
                return m;
            }
            assert!(Instant::now() < deadline, "missing {missing:?} in\n{m}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `/readyz` answers `status`; panics after `secs`.
    pub fn wait_readyz(&self, status: u16, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.admin_get("/readyz");
            if r.status == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz still {}: {}",
                r.status,
                r.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The config file keygate runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Sends `signal` (e.g. "TERM", "HUP") to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Keygate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The `reason` of a denial body.
    pub fn reason(&self) -> String {
        self.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    /// Headers the echo upstream received, as (name, value) pairs.
    pub fn upstream_headers(&self) -> Vec<(String, String)> {
        serde_json::from_value(self.json()["headers"].clone()).unwrap()
    }
    /// The single value of an upstream header (case-insensitive name); panics if repeated.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        let all: Vec<String> = self
            .upstream_headers()
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect();
        assert!(all.len() <= 1, "{name} arrived {} times", all.len());
        all.into_iter().next()
    }
    #[track_caller]
    pub fn assert_denied(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.reason(), reason, "body: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// A keep-alive client connection.
pub struct Conn {
    rd: BufReader<TcpStream>,
    /// The last request was a HEAD: its response has no body whatever it declares.
    head: bool,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        Self::from_stream(TcpStream::connect(addr).unwrap())
    }

    pub fn from_stream(s: TcpStream) -> Conn {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            rd: BufReader::new(s),
            head: false,
        }
    }

    /// Sends raw bytes and reads one response (Content-Length or chunked body).
    pub fn raw(&mut self, bytes: &[u8]) -> Resp {
        self.rd.get_mut().write_all(bytes).unwrap();
        self.read_response()
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: keygate.test\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.head = method == "HEAD";
        let r = self.raw(&bytes);
        self.head = false;
        r
    }

    pub fn read_response(&mut self) -> Resp {
        self.try_read_response()
            .expect("connection closed before a response")
    }

    /// Sends raw bytes; the response, or `None` if the connection closed (or timed out) first.
    pub fn try_raw(&mut self, bytes: &[u8]) -> Option<Resp> {
        self.rd.get_mut().write_all(bytes).ok()?;
        self.try_read_response()
    }

    /// Whether the server closed the connection (EOF within the read timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.rd.read(&mut b), Ok(0) | Err(_))
    }

    /// Sets how long reads wait.
    pub fn set_read_timeout(&mut self, d: Duration) {
        self.rd.get_ref().set_read_timeout(Some(d)).unwrap();
    }

    /// Reads one response; `None` if the connection closed (or timed out) first.
    pub fn try_read_response(&mut self) -> Option<Resp> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = self.rd.read_line(&mut line).ok()?;
            if n == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut lines = head.lines();
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if self.head || status == 101 || status == 204 || status == 304 {
            // no body
        } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut line = String::new();
                self.rd.read_line(&mut line).ok()?;
                let size = usize::from_str_radix(line.trim(), 16).ok()?;
                let mut chunk = vec![0; size + 2];
                self.rd.read_exact(&mut chunk).ok()?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = find("content-length") {
            body.resize(len.parse().ok()?, 0);
            // A HEAD sent raw declares a length it does not send: keep the head.
            if self.rd.read_exact(&mut body).is_err() {
                body.clear();
            }
        }
        Some(Resp {
            status,
            headers,
            body,
        })
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    Conn::open(addr).request(method, path, headers, body)
}

pub fn now() -> u64 {
    keygate::token::now()
}

/// Signs `claims` with the fixture private key `key` (e.g. `rsa.key`).
pub fn sign(key: &str, alg: &str, kid: Option<&str>, claims: Value) -> String {
    let (k, _) = keygate::token::signing_key(&read_fixture(key)).unwrap();
    let map: Map<String, Value> = serde_json::from_value(claims).unwrap();
    keygate::token::sign(&k, alg.parse().unwrap(), kid, &map).unwrap()
}

/// Signs with an HMAC secret.
pub fn sign_hs(secret: &[u8], alg: &str, kid: Option<&str>, claims: Value) -> String {
    let k = jsonwebtoken::EncodingKey::from_secret(secret);
    let map: Map<String, Value> = serde_json::from_value(claims).unwrap();
    keygate::token::sign(&k, alg.parse().unwrap(), kid, &map).unwrap()
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A token built by hand: any header, any payload, any signature.
pub fn raw_token(header: Value, payload: Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        sig
    )
}

/// A valid Knock-style user token for `sub` (RS256, no kid).
pub fn user_token(sub: &str) -> String {
    let t = now();
    sign(
        "rsa.key",
        "RS256",
        None,
        json!({"sub": sub, "iat": t, "exp": t + 600}),
    )
}

/// The Notifizz-style user token for `user` under the test secret (hmac_sha256 scheme).
pub fn hmac_token(user: &str) -> String {
    hex::encode(keygate::auth::hmac_token::compute(
        keygate::config::HmacScheme::HmacSha256,
        HMAC_SECRET.as_bytes(),
        user.as_bytes(),
    ))
}

pub const DOKA_KID: &str = "a89c4bdd-60d9-4803-ac2d-c7a06c56074e";
pub const HMAC_SECRET: &str = "notifizz-test-secret-0c1d";
pub const HS_SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

/// DokaAI customer claims, valid for 15 minutes.
pub fn customer_claims(sub: &str, ws: &str) -> Value {
    let t = now();
    json!({"sub": sub, "type": "customer", "workspace_id": ws, "iat": t, "exp": t + 900})
}

/// The config used by most tests: every authenticator kind, fixture keys, spec-like routes.
pub fn full_config(mode: &str) -> String {
    let jwk = read_fixture("rsa_other.jwk.json").replace('\n', " ");
    format!(
        r#"mode: {mode}
cors: {{ allowed_origins: ["https://app.test"], allowed_headers: [authorization, content-type, x-knock-user-token], allow_credentials: true }}
identity:
  claims: {{ workspace_id: x-auth-workspace-id, email: x-auth-user-email }}
authenticators:
  knock_public:
    type: public_key
    from: [{{ header: authorization, scheme: Bearer }}, {{ query: api_key }}]
    keys: [{{ name: web, value: "pk_test_1" }}]
    user_id_from: {{ path_param: user_id }}
  knock_user:
    type: jwt
    from: [{{ header: x-knock-user-token }}, {{ query: user_token }}]
    algorithms: [RS256]
    keys: [{{ pem_file: "{rsa}" }}]
    require: [sub, iat, exp]
  widget_hmac:
    type: hmac_token
    secret: "${{KG_TEST_HMAC_SECRET}}"
    token_from: {{ header: x-user-token }}
    user_id_from: {{ header: x-user-id }}
  widget_concat:
    type: hmac_token
    scheme: sha256_concat
    secret_file: "{secret_file}"
    token_from: {{ header: x-user-hash }}
    user_id_from: {{ header: x-user-id }}
  doka_server:
    type: client_secret
    key_from: {{ header: x-client-key }}
    secret_from: {{ header: x-client-secret }}
    clients:
      - {{ name: billing, key: "ck_live_7f3a", secret_sha256: "{billing_sha}" }}
      - {{ name: crm, key: "ck_live_91b2", secret: "crm-secret-value" }}
  events_key:
    type: api_key
    from: {{ header: authorization, scheme: Bearer }}
    keys: [{{ name: ingest, sha256: "{ingest_sha}" }}]
  doka_customer:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{{ kid: "{DOKA_KID}", pem_file: "{rsa}" }}]
    require: [sub, exp]
    max_lifetime_seconds: 900
    claims: {{ type: customer, workspace_id: [ONAVZK8J, SECOND01] }}
  multi:
    type: jwt
    from: {{ header: x-multi-token }}
    algorithms: [RS256, PS256, ES256, ES384, EdDSA, HS256]
    issuers: ["https://issuer.test", "issuer.test"]
    audiences: [aud-1, aud-2]
    leeway_seconds: 5
    keys:
      - {{ kid: rsa, pem_file: "{rsa}" }}
      - {{ kid: ec256, pem_file: "{ec256}" }}
      - {{ kid: ec384, pem_file: "{ec384}" }}
      - {{ kid: ed, pem_file: "{ed}" }}
      - {{ kid: hs, secret: "{HS_SECRET}" }}
      - {{ jwk: {jwk} }}
      - {{ jwks_file: "{jwks}" }}
  google:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    jwks_url: "http://127.0.0.1:9/certs"
    issuers: ["https://accounts.google.com"]
    algorithms: [RS256]
routes:
  - {{ name: health, path: /healthz, auth: anonymous }}
  - name: knock_feed
    path: "/v1/users/{{user_id}}/feeds/{{feed_id}}"
    methods: [GET]
    auth: [[knock_public, knock_user]]
    bind: {{ user_id: "{{user_id}}" }}
  - name: knock_batch
    path: "/v1/messages/batch/{{status}}"
    methods: [POST]
    auth: [[knock_public, knock_user]]
  - {{ name: widget, path: "/widget/{{*rest}}", auth: [widget_hmac, widget_concat] }}
  - {{ name: events, path: "/v1/events/{{*rest}}", methods: [POST], auth: [doka_server, events_key] }}
  - {{ name: customer_api, path: "/api/v1/{{*rest}}", auth: [doka_customer] }}
  - name: workspace_items
    path: "/workspaces/{{ws}}/items"
    auth: [doka_customer]
    bind: {{ claims.workspace_id: "{{ws}}" }}
  - {{ name: multi, path: "/multi/{{*rest}}", auth: [multi] }}
  - {{ name: google, path: "/google/{{*rest}}", auth: [google] }}
  - {{ name: open, path: "/public/{{*rest}}", auth: anonymous }}
"#,
        rsa = fixture("rsa.pub"),
        ec256 = fixture("ec256.pub"),
        ec384 = fixture("ec384.pub"),
        ed = fixture("ed25519.pub"),
        jwks = fixture("jwks.json"),
        secret_file = fixture("concat_secret.txt"),
        billing_sha = keygate::token::hash_hex(b"billing-secret-value"),
        ingest_sha = keygate::token::hash_hex(b"ek_ingest_1"),
    )
}

/// Echo upstream + keygate with [`full_config`].
pub fn full(mode: &str) -> (Echo, Keygate) {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::start_with_env(
        &full_config(mode),
        up.addr,
        &[("KG_TEST_HMAC_SECRET", HMAC_SECRET)],
    );
    (up, kg)
}

/// Reads lines from a child's stdout on a thread.
pub fn spawn_line_reader(out: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A raw websocket client (RFC 6455) for byte-level tests: it writes frames exactly as told,
/// split and fragmented at will.
pub struct WsClient {
    pub rd: BufReader<TcpStream>,
}

/// Opens a websocket through keygate: `Ok` after a 101, `Err(response)` otherwise.
pub fn ws_connect(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<WsClient, Resp> {
    let mut c = Conn::open(addr);
    let mut req = format!(
        "GET {target} HTTP/1.1\r\nHost: keygate.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.rd.get_mut().write_all(req.as_bytes()).unwrap();
    let resp = c.read_response();
    if resp.status == 101 {
        Ok(WsClient { rd: c.rd })
    } else {
        Err(resp)
    }
}

impl WsClient {
    /// Writes raw bytes (already framed).
    pub fn write(&mut self, bytes: &[u8]) {
        self.rd.get_mut().write_all(bytes).unwrap();
    }

    /// A masked client frame.
    pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut f =
            keygate::websocket::encode(opcode, payload, Some([0x12, 0x34, 0x56, 0x78])).to_vec();
        if !fin {
            f[0] &= 0x7f;
        }
        f
    }

    pub fn send_text(&mut self, text: &str) {
        let f = Self::frame(1, true, text.as_bytes());
        self.write(&f);
    }

    /// Reads one frame: (opcode, payload); `None` when the connection closed.
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.rd.read_exact(&mut head).ok()?;
        let mut len = (head[1] & 0x7f) as u64;
        if len == 126 {
            let mut b = [0u8; 2];
            self.rd.read_exact(&mut b).ok()?;
            len = u16::from_be_bytes(b) as u64;
        } else if len == 127 {
            let mut b = [0u8; 8];
            self.rd.read_exact(&mut b).ok()?;
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; len as usize];
        self.rd.read_exact(&mut payload).ok()?;
        Some((head[0] & 0x0f, payload))
    }

    /// Reads frames until a text frame; `None` if the connection closed first.
    pub fn read_text(&mut self) -> Option<String> {
        loop {
            let (op, p) = self.read_frame()?;
            match op {
                1 => return Some(String::from_utf8(p).unwrap()),
                8 => return None,
                _ => continue,
            }
        }
    }
}
