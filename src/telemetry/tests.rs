use opentelemetry::trace::TraceContextExt as _;
use pingora::http::RequestHeader;

use super::propagation::{inject, parent, well_formed};
use super::request::method;
use super::*;
use crate::config::value::Str;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn cfg(endpoint: Option<&str>, ratio: f64, name: &str) -> TelemetryConfig {
    TelemetryConfig {
        otlp_endpoint: endpoint.map(|e| Str(e.into())),
        sample_ratio: ratio,
        service_name: Str(name.into()),
    }
}

fn check(endpoint: &str) -> Result<String, String> {
    Settings::from_config(Some(&cfg(Some(endpoint), 1.0, "keygate")))
        .map(|s| s.unwrap().traces_url)
        .map_err(|e| e.to_string())
}

#[test]
fn the_traces_path_is_appended_to_the_endpoint() {
    assert_eq!(
        check("http://otel-collector.observability:4318").unwrap(),
        "http://otel-collector.observability:4318/v1/traces"
    );
    assert_eq!(
        check("https://collector:4318/").unwrap(),
        "https://collector:4318/v1/traces"
    );
    assert_eq!(
        check("http://10.0.0.1:4318/otlp/").unwrap(),
        "http://10.0.0.1:4318/otlp/v1/traces"
    );
}

#[test]
fn endpoints_that_are_not_http_urls_are_refused_without_echoing_them() {
    let cases = [
        ("", "must be an http or https URL"),
        ("otel-collector:4318", "must be an http or https URL"),
        ("grpc://collector:4317", "scheme must be http or https"),
        (
            "http://user:s3cret@collector:4318",
            "must not contain user info",
        ),
        ("http://collector:4318/?k=v", "must not have a query"),
        ("not a url", "must be an http or https URL"),
    ];
    for (endpoint, want) in cases {
        let e = check(endpoint).unwrap_err();
        assert!(
            e.starts_with("telemetry.otlp_endpoint: "),
            "{endpoint}: {e}"
        );
        assert!(e.contains(want), "{endpoint}: {e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}

#[test]
fn sample_ratio_and_service_name_are_checked_even_without_an_endpoint() {
    for ratio in [-0.1, 1.5, f64::NAN] {
        let e = Settings::from_config(Some(&cfg(None, ratio, "k"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "telemetry.sample_ratio: must be between 0.0 and 1.0"
        );
    }
    let e = Settings::from_config(Some(&cfg(None, 1.0, " "))).unwrap_err();
    assert_eq!(e.to_string(), "telemetry.service_name: must not be empty");
    assert_eq!(
        Settings::from_config(Some(&cfg(None, 0.0, "k"))).unwrap(),
        None
    );
    assert_eq!(Settings::from_config(None).unwrap(), None);
    let s = Settings::from_config(Some(&cfg(Some("http://c:4318"), 0.25, "kg")))
        .unwrap()
        .unwrap();
    assert_eq!((s.sample_ratio, s.service_name.as_str()), (0.25, "kg"));
}

#[test]
fn traceparent_must_be_well_formed() {
    assert!(well_formed(TP));
    assert!(well_formed(
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
    ));
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        "00-1-2-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
    ] {
        assert!(!well_formed(bad), "{bad}");
    }
}

fn req(headers: &[(&'static str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
    for (k, v) in headers {
        r.append_header(*k, *v).unwrap();
    }
    r
}

#[test]
fn the_client_span_is_the_parent_unless_traceparent_is_missing_repeated_or_malformed() {
    let cx = parent(&req(&[("traceparent", TP), ("tracestate", "a=1")]));
    let sc = cx.span().span_context().clone();
    assert!(sc.is_remote() && sc.is_sampled());
    assert_eq!(
        format!("{}-{}", sc.trace_id(), sc.span_id()),
        "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
    );
    assert_eq!(sc.trace_state().header(), "a=1");
    // Several tracestate lines are one list.
    let cx = parent(&req(&[
        ("traceparent", TP),
        ("tracestate", "a=1"),
        ("tracestate", "b=2,c=3"),
    ]));
    assert_eq!(
        cx.span().span_context().trace_state().header(),
        "a=1,b=2,c=3"
    );
    for headers in [
        vec![],
        vec![("traceparent", TP), ("traceparent", TP)],
        vec![
            ("traceparent", "00-zz-00f067aa0ba902b7-01"),
            ("tracestate", "a=1"),
        ],
        vec![(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )],
    ] {
        let cx = parent(&req(&headers));
        assert!(!cx.span().span_context().is_valid(), "{headers:?}");
    }
}

#[test]
fn inject_replaces_the_clients_headers() {
    let all = |up: &RequestHeader, n: &str| -> Vec<String> {
        up.headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    let cx = parent(&req(&[("traceparent", TP), ("tracestate", "a=1")]));
    let mut up = req(&[("traceparent", "00-x"), ("tracestate", "evil=1")]);
    inject(&cx, &mut up);
    assert_eq!(all(&up, "traceparent"), vec![TP.to_string()]);
    assert_eq!(all(&up, "tracestate"), vec!["a=1".to_string()]);
    // No parent: nothing is injected, and the client's are gone.
    let mut up = req(&[("traceparent", "00-x"), ("tracestate", "evil=1")]);
    inject(&opentelemetry::Context::new(), &mut up);
    assert!(all(&up, "traceparent").is_empty());
    assert!(all(&up, "tracestate").is_empty());
}

#[test]
fn methods_outside_the_standard_set_are_other() {
    for m in [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
    ] {
        assert_eq!(method(m), m);
    }
    assert_eq!(method("PURGE"), "_OTHER");
    assert_eq!(method("get"), "_OTHER");
}
