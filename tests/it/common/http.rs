//! A raw HTTP/1.1 client: requests sent byte for byte (so paths and headers reach keygate exactly
//! as written), responses parsed with Content-Length or chunked bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The `reason` of a denial body.
    pub(crate) fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or_default().to_string()
    }
    /// Headers the echo upstream received, as (name, value) pairs.
    pub(crate) fn upstream_headers(&self) -> Vec<(String, String)> {
        serde_json::from_value(self.json()["headers"].clone()).unwrap()
    }
    /// The single value of an upstream header (case-insensitive name); panics if repeated.
    pub(crate) fn upstream_header(&self, name: &str) -> Option<String> {
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
    pub(crate) fn assert_denied(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.reason(), reason, "body: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// A keep-alive client connection.
pub(crate) struct Conn {
    pub(crate) rd: BufReader<TcpStream>,
    /// The last request was a HEAD: its response has no body whatever it declares.
    head: bool,
}

impl Conn {
    pub(crate) fn open(addr: SocketAddr) -> Conn {
        Self::from_stream(TcpStream::connect(addr).unwrap())
    }

    pub(crate) fn from_stream(s: TcpStream) -> Conn {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn { rd: BufReader::new(s), head: false }
    }

    /// Sends raw bytes and reads one response (Content-Length or chunked body).
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> Resp {
        self.rd.get_mut().write_all(bytes).unwrap();
        self.read_response()
    }

    pub(crate) fn request(
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

    pub(crate) fn read_response(&mut self) -> Resp {
        self.try_read_response().expect("connection closed before a response")
    }

    /// Sends raw bytes; the response, or `None` if the connection closed (or timed out) first.
    pub(crate) fn try_raw(&mut self, bytes: &[u8]) -> Option<Resp> {
        self.rd.get_mut().write_all(bytes).ok()?;
        self.try_read_response()
    }

    /// Whether the server closed the connection (EOF within the read timeout).
    pub(crate) fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.rd.read(&mut b), Ok(0) | Err(_))
    }

    /// Sets how long reads wait.
    pub(crate) fn set_read_timeout(&mut self, d: Duration) {
        self.rd.get_ref().set_read_timeout(Some(d)).unwrap();
    }

    /// Reads one response; `None` if the connection closed (or timed out) first.
    pub(crate) fn try_read_response(&mut self) -> Option<Resp> {
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
            headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone())
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
        Some(Resp { status, headers, body })
    }
}

/// One request on a fresh connection.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    Conn::open(addr).request(method, path, headers, body)
}

/// One row of a request table, named rather than positional:
/// `Case::get("/x").header("Authorization", tok).denied(401, "invalid_signature")`.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The status expected.
    pub(crate) status: u16,
    /// The denial reason expected (`""`: not a denial, not checked).
    pub(crate) reason: &'static str,
}

impl Case {
    /// A request with `method` (`POST` and `PUT` get the body `{}`), expecting 200.
    pub(crate) fn new(method: &str, path: &str) -> Case {
        let body = if matches!(method, "POST" | "PUT") { b"{}".to_vec() } else { Vec::new() };
        let (method, path) = (method.to_string(), path.to_string());
        Case { method, path, headers: Vec::new(), body, status: 200, reason: "" }
    }

    pub(crate) fn get(path: &str) -> Case {
        Case::new("GET", path)
    }

    pub(crate) fn post(path: &str) -> Case {
        Case::new("POST", path)
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Case {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Expects a denial: `status` with a JSON body whose `reason` is `reason`.
    pub(crate) fn denied(mut self, status: u16, reason: &'static str) -> Case {
        self.status = status;
        self.reason = reason;
        self
    }

    /// Sends the request on `conn` and asserts status and reason, naming the row on failure.
    #[track_caller]
    pub(crate) fn check(&self, conn: &mut Conn) -> Resp {
        let h: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (&**k, &**v)).collect();
        let r = conn.request(&self.method, &self.path, &h, &self.body);
        let got = (r.status, if self.reason.is_empty() { String::new() } else { r.reason() });
        let want = (self.status, self.reason.to_string());
        assert_eq!(got, want, "{} {}: {}", self.method, self.path, r.text());
        r
    }
}
