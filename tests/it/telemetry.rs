//! OpenTelemetry tracing end to end: the real keygate binary exports to a real OTLP/HTTP
//! receiver (a std HTTP server here, decoding with the official `opentelemetry-proto` messages),
//! and the echo upstream reports the `traceparent` it received.

use crate::common::*;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// One exported span with its resource's attributes.
#[derive(Clone, Debug)]
struct Got {
    span: Span,
    resource: Vec<KeyValue>,
}

/// An OTLP/HTTP receiver on 127.0.0.1: `POST /v1/traces` with an
/// `application/x-protobuf` body; anything else is 404 and recorded as a problem.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Got>>>,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    fn spawn() -> Collector {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (spans.clone(), problems.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().map_while(Result::ok) {
                let (s, p) = (s.clone(), p.clone());
                std::thread::spawn(move || serve(conn, &s, &p));
            }
        });
        Collector { addr, spans, problems }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<Got> {
        assert!(self.problems.lock().unwrap().is_empty(), "{:?}", self.problems.lock().unwrap());
        self.spans.lock().unwrap().clone()
    }

    /// The spans of `trace_id` (hex) once there are at least `n`; panics after 15 s.
    fn trace(&self, trace_id: &str, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got: Vec<Got> = self
                .spans()
                .into_iter()
                .filter(|g| hex::encode(&g.span.trace_id) == trace_id)
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id}: {} of {n} spans arrived: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Serves one keep-alive connection of the exporter.
fn serve(conn: TcpStream, spans: &Mutex<Vec<Got>>, problems: &Mutex<Vec<String>>) {
    let mut rd = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request_line = line.trim().to_string();
        let (mut len, mut ctype) = (0usize, String::new());
        loop {
            line.clear();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap(),
                    "content-type" => ctype = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        rd.read_exact(&mut body).unwrap();
        let ok = request_line.starts_with("POST /v1/traces ") && ctype == "application/x-protobuf";
        if ok {
            let req = ExportTraceServiceRequest::decode(&body[..]).unwrap();
            let mut out = spans.lock().unwrap();
            for rs in req.resource_spans {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        out.push(Got { span, resource: resource.clone() });
                    }
                }
            }
        } else {
            problems.lock().unwrap().push(format!("{request_line} ({ctype})"));
        }
        let status = if ok { "200 OK" } else { "404 Not Found" };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        );
        if rd.get_mut().write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr_of(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref().map(text))
}

fn attr(g: &Got, key: &str) -> Option<String> {
    attr_of(&g.span.attributes, key)
}

/// Every string a span carries: its name, attributes, events and resource.
fn strings(g: &Got) -> Vec<String> {
    let mut out = vec![g.span.name.clone()];
    let all = g
        .span
        .attributes
        .iter()
        .chain(g.span.events.iter().flat_map(|e| e.attributes.iter()))
        .chain(g.resource.iter());
    for kv in all {
        out.push(kv.key.clone());
        if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            out.push(text(v));
        }
    }
    out.extend(g.span.events.iter().map(|e| e.name.clone()));
    out
}

fn kind(trace: &[Got], k: SpanKind) -> Vec<&Got> {
    trace.iter().filter(|g| g.span.kind == k as i32).collect()
}

fn one(trace: &[Got], k: SpanKind) -> &Got {
    let all = kind(trace, k);
    assert_eq!(all.len(), 1, "{k:?} spans: {trace:#?}");
    all[0]
}

fn id(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// (trace id, parent id, flags) of a `traceparent` value.
fn parts(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "{tp}");
    assert_eq!(p[0], "00", "{tp}");
    (p[1].into(), p[2].into(), p[3].into())
}

fn telemetry_block(endpoint: &str, ratio: &str) -> String {
    format!(
        "telemetry:\n  otlp_endpoint: \"{endpoint}\"\n  sample_ratio: {ratio}\n  service_name: kg-under-test\n"
    )
}

/// The echo upstream + keygate with [`full_config`] and `extra`; batches every 50 ms.
fn start(extra: &str, env: &[(&str, &str)]) -> (Echo, Keygate) {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let mut all = vec![("KG_TEST_HMAC_SECRET", HMAC_SECRET), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
    all.extend_from_slice(env);
    let mut kg = Keygate::builder()
        .config(format!("{}{extra}", full_config("production")))
        .upstream(up.addr);
    for (name, value) in all {
        kg = kg.env(name, value);
    }
    (up, kg.start())
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const USER: &str = "user-7781";

#[test]
fn spans_continue_the_client_trace_and_name_route_outcome_and_authenticator() {
    let col = Collector::spawn();
    let (_up, kg) = start(&telemetry_block(&col.endpoint(), "1.0"), &[]);
    let token = user_token(USER);

    // Allowed, with the client's traceparent and tracestate; credentials in the query.
    let tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let target = format!("/v1/users/{USER}/feeds/f1?api_key=pk_test_1&user_token={token}");
    let r = kg.get(&target, &[("traceparent", &tp), ("tracestate", "vendor=abc")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let sent_up = r.upstream_header("traceparent").expect("traceparent upstream");
    assert_eq!(r.upstream_header("tracestate").as_deref(), Some("vendor=abc"));
    let credential = r.upstream_header("x-auth-credential").unwrap();

    let trace = col.trace(CLIENT_TRACE, 3);
    assert_eq!(trace.len(), 3, "{trace:#?}");
    let server = one(&trace, SpanKind::Server);
    let auth = one(&trace, SpanKind::Internal);
    let upstream = one(&trace, SpanKind::Client);
    assert_eq!(id(&server.span.parent_span_id), CLIENT_SPAN);
    let server_id = id(&server.span.span_id);
    assert_eq!(id(&auth.span.parent_span_id), server_id);
    assert_eq!(id(&upstream.span.parent_span_id), server_id);
    assert_eq!(server.span.name, "GET /v1/users/{user_id}/feeds/{feed_id}");
    assert_eq!(auth.span.name, "authenticate");
    assert_eq!(upstream.span.name, "GET");
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(server, "http.route").as_deref(), Some("/v1/users/{user_id}/feeds/{feed_id}"));
    assert_eq!(attr(server, "keygate.route").as_deref(), Some("knock_feed"));
    assert_eq!(attr(server, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(server, "keygate.outcome").as_deref(), Some("allowed"));
    assert_eq!(attr(server, "keygate.reason").as_deref(), Some("none"));
    assert!(credential.starts_with("knock_public/web,knock_user"), "{credential}");
    assert_eq!(attr(server, "keygate.authenticator"), Some(credential.clone()));
    assert_eq!(attr(auth, "keygate.outcome").as_deref(), Some("allowed"));
    assert_eq!(attr(auth, "keygate.authenticator"), Some(credential));
    assert_eq!(auth.span.events.len(), 2, "one event per authenticator run");
    assert_eq!(attr(upstream, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(upstream, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr_of(&server.resource, "service.name").as_deref(), Some("kg-under-test"));
    // The upstream's parent is keygate's upstream span, in the client's trace, sampled.
    let (tid, pid, flags) = parts(&sent_up);
    assert_eq!(tid, CLIENT_TRACE);
    assert_eq!(pid, id(&upstream.span.span_id));
    assert_eq!(flags, "01");

    // Denied: no credentials. An authenticate span, no upstream span.
    let denied_trace = "0af7651916cd43dd8448eb211c80319c";
    let tp = format!("00-{denied_trace}-b7ad6b7169203331-01");
    let r = kg.get(&format!("/v1/users/{USER}/feeds/f1?x=1"), &[("traceparent", &tp)]);
    r.assert_denied(401, "missing_credentials");
    let trace = col.trace(denied_trace, 2);
    let server = one(&trace, SpanKind::Server);
    let auth = one(&trace, SpanKind::Internal);
    assert!(kind(&trace, SpanKind::Client).is_empty(), "{trace:#?}");
    assert_eq!(id(&server.span.parent_span_id), "b7ad6b7169203331");
    assert_eq!(id(&auth.span.parent_span_id), id(&server.span.span_id));
    assert_eq!(server.span.name, "GET /v1/users/{user_id}/feeds/{feed_id}");
    for g in [server, auth] {
        assert_eq!(attr(g, "keygate.outcome").as_deref(), Some("denied"));
        assert_eq!(attr(g, "keygate.reason").as_deref(), Some("missing_credentials"));
        assert_eq!(attr(g, "keygate.authenticator").as_deref(), Some("knock_public"));
    }
    assert_eq!(attr(server, "http.response.status_code").as_deref(), Some("401"));
    assert_eq!(attr(server, "keygate.route").as_deref(), Some("knock_feed"));
    let results: Vec<_> =
        auth.span.events.iter().map(|e| attr_of(&e.attributes, "keygate.result")).collect();
    assert_eq!(results, vec![Some("missing_credentials".to_string()); 2]);

    // No traceparent: keygate starts the trace, and the upstream continues it.
    let r = kg.get("/public/page?q=zzz-query-value", &[]);
    assert_eq!(r.status, 200);
    let (tid, pid, _) = parts(&r.upstream_header("traceparent").unwrap());
    let trace = col.trace(&tid, 3);
    let server = one(&trace, SpanKind::Server);
    assert!(server.span.parent_span_id.is_empty(), "a root span");
    assert_eq!(server.span.name, "GET /public/{*rest}");
    assert_eq!(pid, id(&one(&trace, SpanKind::Client).span.span_id));
    assert_eq!(attr(server, "keygate.authenticator"), None, "anonymous");

    // A malformed traceparent starts a new trace; the request is unaffected.
    let bad = format!("00-{}-{CLIENT_SPAN}-01", CLIENT_TRACE.to_uppercase());
    let r = kg.get("/public/again", &[("traceparent", &bad), ("tracestate", "a=b")]);
    assert_eq!(r.status, 200);
    let (tid, _, _) = parts(&r.upstream_header("traceparent").unwrap());
    assert_ne!(tid, CLIENT_TRACE.to_string());
    assert_eq!(r.upstream_header("tracestate"), None, "ignored with its traceparent");
    let trace = col.trace(&tid, 3);
    assert!(one(&trace, SpanKind::Server).span.parent_span_id.is_empty());

    // Nothing exported names a credential, the path or the query.
    let every: Vec<String> = col.spans().iter().flat_map(strings).collect();
    for secret in [token.as_str(), "pk_test_1", "api_key", "user_token", USER, "zzz-query", "?"] {
        let hit: Vec<&String> = every.iter().filter(|s| s.contains(secret)).collect();
        assert!(hit.is_empty(), "{secret:?} exported in {hit:?}");
    }
}

#[test]
fn sample_ratio_zero_exports_only_traces_with_a_sampled_parent() {
    let col = Collector::spawn();
    let (_up, kg) = start(&telemetry_block(&col.endpoint(), "0.0"), &[]);
    // No parent, and an unsampled parent: not exported, but still propagated (flags 00).
    let r = kg.get("/public/a", &[]);
    assert_eq!(r.status, 200);
    let (root, _, flags) = parts(&r.upstream_header("traceparent").unwrap());
    assert_eq!(flags, "00");
    let unsampled = "11111111111111111111111111111111";
    let tp = format!("00-{unsampled}-2222222222222222-00");
    let r = kg.get("/public/b", &[("traceparent", &tp)]);
    let (tid, pid, flags) = parts(&r.upstream_header("traceparent").unwrap());
    assert_eq!((tid.as_str(), flags.as_str()), (unsampled, "00"));
    assert_ne!(pid, "2222222222222222", "keygate's span is the upstream's parent");
    // A sampled parent is honoured.
    let sampled = "33333333333333333333333333333333";
    let tp = format!("00-{sampled}-4444444444444444-01");
    let r = kg.get("/public/c", &[("traceparent", &tp)]);
    assert_eq!(r.status, 200);
    let trace = col.trace(sampled, 3);
    assert_eq!(id(&one(&trace, SpanKind::Server).span.parent_span_id), "4444444444444444");
    // The earlier requests ended first: had they been sampled, they would be here by now.
    let traces: BTreeSet<String> = col.spans().iter().map(|g| id(&g.span.trace_id)).collect();
    assert_eq!(traces, BTreeSet::from([sampled.to_string()]), "root was {root}");
}

#[test]
fn an_unreachable_collector_never_slows_or_fails_requests() {
    // Nothing listens on the first; the second accepts connections and never answers.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let blackhole = format!("http://{}", hole.local_addr().unwrap());
    for endpoint in [closed, blackhole] {
        let env = [("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")];
        let (_up, kg) = start(&telemetry_block(&endpoint, "1.0"), &env);
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        while started.elapsed() < Duration::from_millis(1500) {
            let t = Instant::now();
            let r = kg.get("/public/x", &[]);
            assert_eq!(r.status, 200, "{endpoint}: {}", r.text());
            slowest = slowest.max(t.elapsed());
        }
        // An export on the request path would take the 2 s export timeout (or fail it).
        assert!(slowest < Duration::from_secs(1), "{endpoint}: {slowest:?}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while kg.metric("keygate_trace_export_failures_total").unwrap_or(0.0) < 1.0 {
            assert!(Instant::now() < deadline, "{endpoint}: no export failure counted");
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs = kg.logs();
        assert_eq!(
            logs.matches("trace export failed").count(),
            1,
            "{endpoint}: logged once a minute at most:\n{logs}"
        );
    }
    drop(hole);
}

#[test]
fn without_an_endpoint_the_clients_trace_headers_pass_unchanged() {
    let tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    for extra in ["", "telemetry:\n  sample_ratio: 0.5\n"] {
        let (_up, kg) = start(extra, &[]);
        let r = kg.get("/public/x", &[("traceparent", &tp), ("tracestate", "vendor=abc,other=1")]);
        assert_eq!(r.status, 200);
        assert_eq!(r.upstream_header("traceparent"), Some(tp.clone()));
        assert_eq!(r.upstream_header("tracestate").as_deref(), Some("vendor=abc,other=1"));
        // No trace header is invented either.
        let r = kg.get("/public/x", &[]);
        assert_eq!(r.upstream_header("traceparent"), None, "{extra:?}");
    }
}

#[test]
fn a_reload_that_changes_telemetry_reports_it_needs_a_restart() {
    // (`keygate check` on bad telemetry blocks: tests/fixtures/broken/telemetry_*.yaml.)
    let col = Collector::spawn();
    let (_up, kg) = start(&telemetry_block(&col.endpoint(), "1.0"), &[]);
    let path = kg.config_path();
    let text =
        std::fs::read_to_string(&path).unwrap().replace("sample_ratio: 1.0", "sample_ratio: 0.5");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kg.logs().contains("needs a restart") {
        assert!(Instant::now() < deadline, "no restart notice: {}", kg.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(kg.logs().contains("\"field\":\"telemetry\""), "{}", kg.logs());
}
