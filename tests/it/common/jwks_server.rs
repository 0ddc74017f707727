//! A real HTTP JWK-set server on 127.0.0.1 that a test controls: the set it serves, its status,
//! a delay, an outage (connections closed without an answer), `Cache-Control`, and a discovery
//! document; it counts fetches of the set.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

#[derive(Clone)]
pub(crate) struct Behaviour {
    pub(crate) keys: Vec<Value>,
    pub(crate) status: u16,
    pub(crate) delay: Duration,
    pub(crate) down: bool,
    pub(crate) cache_control: Option<String>,
    /// `issuer` of the discovery document at `/.well-known/openid-configuration`.
    pub(crate) issuer: String,
}

pub(crate) struct JwksServer {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<Behaviour>>,
    fetches: Arc<AtomicU64>,
}

impl JwksServer {
    pub(crate) fn start(keys: Vec<Value>) -> JwksServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Behaviour {
            keys,
            status: 200,
            delay: Duration::ZERO,
            down: false,
            cache_control: None,
            issuer: "https://issuer.test".into(),
        }));
        let fetches = Arc::new(AtomicU64::new(0));
        let (st, f) = (state.clone(), fetches.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (st, f) = (st.clone(), f.clone());
                std::thread::spawn(move || {
                    let mut rd = BufReader::new(conn);
                    let mut first = String::new();
                    if rd.read_line(&mut first).is_err() {
                        return;
                    }
                    loop {
                        let mut l = String::new();
                        if rd.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                            break;
                        }
                    }
                    let b = st.lock().unwrap().clone();
                    let path = first.split(' ').nth(1).unwrap_or("/").to_string();
                    let discovery = path.contains("openid-configuration");
                    if !discovery {
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                    if b.down {
                        return; // connection closed without an answer
                    }
                    std::thread::sleep(b.delay);
                    let body = if discovery {
                        json!({"issuer": b.issuer, "jwks_uri": format!("http://{addr}/certs")})
                            .to_string()
                    } else {
                        json!({"keys": b.keys}).to_string()
                    };
                    let cc = b
                        .cache_control
                        .map(|c| format!("cache-control: {c}\r\n"))
                        .unwrap_or_default();
                    let resp = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{cc}connection: close\r\n\r\n{body}",
                        b.status,
                        body.len()
                    );
                    let _ = rd.get_mut().write_all(resp.as_bytes());
                });
            }
        });
        JwksServer { addr, state, fetches }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/certs", self.addr)
    }

    pub(crate) fn discovery_url(&self) -> String {
        format!("http://{}/.well-known/openid-configuration", self.addr)
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.lock().unwrap());
    }
}

/// The JWK of fixture public key `file` (e.g. `rsa.jwk.json`) with `kid` and extra members.
pub(crate) fn jwk(file: &str, kid: Option<&str>, extra: Value) -> Value {
    let mut j: Value = serde_json::from_str(&super::read_fixture(file)).unwrap();
    let o = j.as_object_mut().unwrap();
    o.remove("kid");
    o.remove("alg");
    o.remove("use");
    if let Some(k) = kid {
        o.insert("kid".into(), json!(k));
    }
    for (k, v) in extra.as_object().unwrap() {
        o.insert(k.clone(), v.clone());
    }
    j
}
