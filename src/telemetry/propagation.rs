//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) on keygate's two sides: the
//! parent a client sends, and the headers the upstream gets.
//!
//! In: a `traceparent` is used only when it is the request's single one and well formed
//! (section 3.2: `version-traceid-parentid-flags`, lowercase hex, version 00 exactly 55
//! characters, `ff` invalid); otherwise keygate starts a new trace and ignores `tracestate`
//! too (section 3.3.1). Several `tracestate` lines are one list joined by commas (section
//! 3.3.1.1). Out: both headers are replaced by keygate's (the client's `tracestate` entries
//! carried on), after hop-by-hop removal, so no `Connection` line can drop them.

use std::borrow::Cow;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use pingora::http::RequestHeader;

/// `traceparent` (W3C Trace Context, section 3.2).
pub(crate) const TRACEPARENT: &str = "traceparent";
/// `tracestate` (W3C Trace Context, section 3.3).
pub(crate) const TRACESTATE: &str = "tracestate";

/// The parent context `req` names: the client's span, or an empty context (a new trace) when
/// it sends none, several, or a malformed one.
pub(crate) fn parent(req: &RequestHeader) -> Context {
    let mut parents = req.headers.get_all(TRACEPARENT).iter();
    let traceparent = match (parents.next(), parents.next()) {
        (Some(v), None) => v.to_str().ok().filter(|v| well_formed(v)),
        _ => None,
    };
    let Some(traceparent) = traceparent else {
        return Context::new();
    };
    let mut states = req
        .headers
        .get_all(TRACESTATE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let tracestate = states.next().map(|first| match states.next() {
        None => Cow::Borrowed(first),
        Some(second) => {
            let mut all = format!("{first},{second}");
            states.for_each(|s| {
                all.push(',');
                all.push_str(s);
            });
            Cow::Owned(all)
        }
    });
    TraceContextPropagator::new().extract(&Incoming {
        traceparent,
        tracestate,
    })
}

/// Replaces `up`'s `traceparent` / `tracestate` with those of `cx` (no `tracestate` when it is
/// empty).
pub(crate) fn inject(cx: &Context, up: &mut RequestHeader) {
    up.remove_header(TRACEPARENT);
    up.remove_header(TRACESTATE);
    TraceContextPropagator::new().inject_context(cx, &mut Outgoing(up));
}

/// Section 3.2.2: `00-<32 hex>-<16 hex>-<2 hex>`, lowercase; a later version may append
/// `-...` after the 55th character. All-zero ids are refused by the SDK (`is_valid`).
pub(crate) fn well_formed(v: &str) -> bool {
    let b = v.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b[r].iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return false;
    }
    if !(hex(0..2) && hex(3..35) && hex(36..52) && hex(53..55)) || &b[0..2] == b"ff" {
        return false;
    }
    match &b[0..2] {
        b"00" => b.len() == 55,
        _ => b.len() == 55 || b[55] == b'-',
    }
}

/// The client's headers as the propagator reads them.
struct Incoming<'a> {
    traceparent: &'a str,
    tracestate: Option<Cow<'a, str>>,
}

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// The upstream request as the propagator writes it.
struct Outgoing<'a>(&'a mut RequestHeader);

impl Injector for Outgoing<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            TRACEPARENT => TRACEPARENT,
            TRACESTATE => TRACESTATE,
            _ => return,
        };
        if !value.is_empty() {
            // Hex and a tracestate the SDK parsed: always a valid header value.
            let _ = self.0.insert_header(name, value);
        }
    }
}
