//! The access log: one JSON object per line on stdout for each finished request (process logs go
//! to stderr; `keygate demo` writes both to stderr). A line is formatted on the request's thread
//! into a reused buffer and appended to one shared queue (`sink.rs`); a background thread takes
//! the whole queue, writes it with one `write(2)`, then lets lines gather for 5 ms before the next
//! write. A request never waits on stdout, and the writer wakes once per batch instead of once
//! per line (with `tracing-appender`'s channel, one message and one wake-up per line, the writer
//! thread took twice the CPU). When stdout cannot keep up and 4 MiB of lines (~16k) are queued,
//! new lines are dropped and counted in `keygate_access_log_dropped_total`.
//!
//! A line (`docs/config.md`, "Access log"):
//!
//! ```json
//! {"timestamp":"2026-12-01T11:40:06.123Z","target":"keygate::access","route":"knock_feed",
//!  "method":"GET","status":200,"outcome":"allowed","reason":"none","authenticator":"knock_user",
//!  "user_id":"user-1","upstream_status":200,"duration_ms":0.412}
//! ```
//!
//! (one line in the output). `access_log: false` turns it off; `access_log_sample_ratio` keeps
//! that fraction of *allowed* requests answered below 500; denials, observed failures and
//! errors are always written. Never
//! a credential, a query string or a header value.

use std::cell::RefCell;
use std::sync::OnceLock;

use serde::ser::{SerializeStruct, Serializer};

mod sink;

use sink::Sink;

/// `access_log` and `access_log_sample_ratio`, compiled (reloadable).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Policy {
    /// `access_log` (default true).
    pub(crate) enabled: bool,
    /// `access_log_sample_ratio` (0.0 to 1.0, default 1.0): the fraction of allowed requests
    /// written.
    pub(crate) sample_ratio: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            sample_ratio: 1.0,
        }
    }
}

/// One finished request, as the access log records it.
#[derive(Debug, Default)]
pub(crate) struct Line<'a> {
    /// `forward_auth` for decisions on the forward-auth listener; absent on the proxy.
    pub(crate) listener: Option<&'static str>,
    /// The matched route's name (`no_route` when none matched).
    pub(crate) route: &'a str,
    /// The request method ("" when the head was refused before it was read).
    pub(crate) method: &'a str,
    /// The status sent to the client (0: none was sent).
    pub(crate) status: u16,
    /// `allowed`, `denied` or `observed`.
    pub(crate) outcome: &'static str,
    /// The reason of a denial or observed failure; `none` when allowed.
    pub(crate) reason: &'static str,
    /// The credential that authenticated it (`authenticator[/key-or-client]`), or "".
    pub(crate) authenticator: &'a str,
    /// The authenticated user id, or "".
    pub(crate) user_id: &'a str,
    /// The backend's status (0: not forwarded).
    pub(crate) upstream_status: u16,
    /// Time from the request head to the end of the response, milliseconds.
    pub(crate) duration_ms: f64,
}

/// The queue and its writer thread, once [`init`] ran; lines written before (or without) it are
/// discarded.
static SINK: OnceLock<&'static Sink> = OnceLock::new();

thread_local! {
    /// This thread's line buffer, reused.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

/// Where the access log goes.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// `keygate run`.
    Stdout,
    /// `keygate demo`, whose stdout is for the reader.
    Stderr,
}

/// Starts the writer thread (once; later calls do nothing).
pub fn init(output: Output) {
    SINK.get_or_init(|| {
        Sink::start(match output {
            Output::Stdout => Box::new(std::io::stdout()),
            Output::Stderr => Box::new(std::io::stderr()),
        })
    });
}

/// Writes every queued line and stops the writer thread; call before the process exits.
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.close();
    }
}

/// Lines dropped because the writer fell behind (for `keygate_access_log_dropped_total`).
pub(crate) fn dropped() -> u64 {
    SINK.get().map_or(0, |s| s.dropped())
}

/// Writes `line` under `policy` (see the module docs).
pub(crate) fn write(policy: Policy, line: &Line<'_>) {
    if !policy.enabled {
        return;
    }
    if line.outcome == "allowed"
        && line.status < 500
        && policy.sample_ratio < 1.0
        && fastrand::f64() >= policy.sample_ratio
    {
        return;
    }
    let Some(sink) = SINK.get() else { return };
    LINE.with_borrow_mut(|buf| {
        buf.clear();
        if serde_json::to_writer(&mut *buf, &Entry(line)).is_ok() {
            buf.push(b'\n');
            sink.push(buf);
        }
    });
}

/// A line with its timestamp and target, in field order.
struct Entry<'a, 'b>(&'a Line<'b>);

impl serde::Serialize for Entry<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = s.serialize_struct("Line", 13)?;
        m.serialize_field("timestamp", &Now)?;
        m.serialize_field("target", "keygate::access")?;
        if let Some(listener) = l.listener {
            m.serialize_field("listener", listener)?;
        }
        m.serialize_field("route", l.route)?;
        m.serialize_field("method", l.method)?;
        m.serialize_field("status", &l.status)?;
        m.serialize_field("outcome", l.outcome)?;
        m.serialize_field("reason", l.reason)?;
        m.serialize_field("authenticator", l.authenticator)?;
        m.serialize_field("user_id", l.user_id)?;
        m.serialize_field("upstream_status", &l.upstream_status)?;
        m.serialize_field("duration_ms", &((l.duration_ms * 1000.0).round() / 1000.0))?;
        m.end()
    }
}

/// The current time as a [`Timestamp`], formatted once per millisecond per thread (a busy
/// worker writes dozens of lines in each).
struct Now;

thread_local! {
    /// (Unix milliseconds, that millisecond formatted).
    static NOW: RefCell<(i128, String)> = const { RefCell::new((-1, String::new())) };
}

impl serde::Serialize for Now {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let now = time::OffsetDateTime::now_utc();
        let ms = now.unix_timestamp_nanos() / 1_000_000;
        NOW.with_borrow_mut(|(at, text)| {
            if *at != ms {
                use std::fmt::Write as _;
                text.clear();
                let _ = write!(text, "{}", Timestamp(now));
                *at = ms;
            }
            s.serialize_str(text)
        })
    }
}

/// RFC 3339 UTC with milliseconds: `2026-12-01T11:40:06.123Z`.
struct Timestamp(time::OffsetDateTime);

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let line = Line {
            route: "r\"1",
            method: "GET",
            status: 401,
            outcome: "denied",
            reason: "missing_credentials",
            duration_ms: 1.23456,
            ..Line::default()
        };
        let text = serde_json::to_string(&Entry(&line)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["route"], "r\"1");
        assert_eq!(v["status"], 401);
        assert_eq!(v["duration_ms"], 1.235);
        assert_eq!(v["target"], "keygate::access");
        assert!(v.get("listener").is_none());
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!((ts.len(), &ts[10..11], &ts[23..]), (24, "T", "Z"), "{ts}");
    }

    #[test]
    fn timestamps_are_rfc3339_millis() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_796_124_964_007_000_000).unwrap();
        assert_eq!(Timestamp(t).to_string(), "2026-12-01T11:36:04.007Z");
    }
}
