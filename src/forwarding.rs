//! Forwarding headers (`docs/config.md`, "Forwarding headers" and `trusted_proxies`).
//!
//! The client address is the peer's, unless the peer is a trusted proxy: then it is the first
//! `X-Forwarded-For` entry, read from the right, that is not itself trusted. The backend gets
//! `X-Forwarded-For` set to the client chain keygate can vouch for: the peer alone, or (behind
//! a trusted proxy) the received value with the peer appended. `Forwarded` and `X-Real-IP` from
//! untrusted peers are removed; `X-Forwarded-Proto`/`-Host` are keygate's own unless a trusted
//! proxy set them. Other spellings of all five (`x_forwarded_for`, `X.Real.IP`, which a CGI-style
//! backend reads as the real header) and of `traceparent` / `tracestate` are removed from every
//! request.

use std::net::IpAddr;

use http::header::{HeaderName, HOST};
use ipnet::IpNet;
use pingora::http::RequestHeader;

use crate::config::value::Str;
use crate::config::FieldError;

// The names inserted: pingora keeps a `&'static str` in its case map without copying it (a
// `HeaderName` is copied there on every insert).
const XFF_NAME: &str = "x-forwarded-for";
const XFP_NAME: &str = "x-forwarded-proto";
const XFH_NAME: &str = "x-forwarded-host";
const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The compiled `trusted_proxies` list.
#[derive(Debug, Default)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `fd00::/8`) or bare addresses (`/32`, `/128`).
    pub(crate) fn compile(list: &[Str]) -> Result<TrustedProxies, FieldError> {
        let mut nets = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let net = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    FieldError::new(
                        format!("trusted_proxies[{i}]"),
                        format!("`{}` is not a CIDR (10.0.0.0/8) or an IP address", s.0),
                    )
                })?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether `ip` is a trusted proxy.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request from `peer` (see the module docs).
    pub(crate) fn client_ip(&self, peer: IpAddr, req: &RequestHeader) -> IpAddr {
        if self.trusts(peer) {
            self.client_behind(peer, req)
        } else {
            canonical(peer)
        }
    }

    /// The client address of a request from `peer` taken as trusted (a trusted proxy, or the
    /// front proxy of the forward-auth listener, trusted by definition): the rightmost
    /// `X-Forwarded-For` hop that is not itself trusted (the address the nearest untrusted hop
    /// had), else the nearest address known; garbage stops the walk.
    pub(crate) fn client_behind(&self, peer: IpAddr, req: &RequestHeader) -> IpAddr {
        let mut client = canonical(peer);
        let lines: Vec<&str> = req
            .headers
            .get_all(&XFF)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        for entry in lines.iter().rev().flat_map(|l| l.rsplit(',')) {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => client = canonical(ip),
                Ok(ip) => return canonical(ip),
                Err(_) => break,
            }
        }
        client
    }

    /// Sets the forwarding headers on the request leaving for the upstream.
    pub(crate) fn apply(
        &self,
        up: &mut RequestHeader,
        peer: Option<IpAddr>,
        tls: bool,
    ) -> pingora::Result<()> {
        strip_aliases(up);
        let trusted = peer.is_some_and(|p| self.trusts(p));
        match (peer.map(canonical), trusted) {
            (Some(ip), true) => {
                let chain: Vec<&str> = up
                    .headers
                    .get_all(&XFF)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                let value = if chain.is_empty() {
                    ip.to_string()
                } else {
                    format!("{}, {ip}", chain.join(", "))
                };
                up.insert_header(XFF_NAME, value)?;
            }
            (Some(ip), false) => {
                up.insert_header(XFF_NAME, ip.to_string())?;
            }
            (None, _) => {
                up.remove_header(&XFF);
            }
        }
        if !trusted {
            up.remove_header(&FORWARDED);
            up.remove_header(&X_REAL_IP);
        }
        if !trusted || !up.headers.contains_key(&XFP) {
            up.insert_header(XFP_NAME, if tls { "https" } else { "http" })?;
        }
        if !trusted || !up.headers.contains_key(&XFH) {
            match up.headers.get(HOST).cloned() {
                Some(host) => up.insert_header(XFH_NAME, host)?,
                None => {
                    up.remove_header(&XFH);
                }
            }
        }
        Ok(())
    }
}

/// `Content-Length: 3, 3` (or two equal lines) goes out as one `Content-Length: 3`, so no
/// backend can read the list another way (RFC 9110 §8.6). pingora refuses unequal values.
pub(crate) fn normalise_content_length(up: &mut RequestHeader) -> pingora::Result<()> {
    let values: Vec<&http::HeaderValue> = up
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .collect();
    let canonical = match values.as_slice() {
        [] => return Ok(()),
        [one] if one.as_bytes().iter().all(u8::is_ascii_digit) && !one.is_empty() => return Ok(()),
        _ => values
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|v| v.trim_ascii())
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok()),
    };
    match canonical {
        Some(n) => up.insert_header(http::header::CONTENT_LENGTH, n.to_string()),
        None => pingora::Error::e_explain(
            pingora::ErrorType::InvalidHTTPHeader,
            "invalid Content-Length",
        ),
    }
}

/// Removes aliases of the headers keygate vouches for: `x_forwarded_for`, `X.Real.IP` and the
/// like (not the forwarding headers to keygate, but the same header to a backend that reads `_`
/// or `.` as `-`), and `trace_parent` / `trace-state` beside W3C Trace Context's `traceparent` /
/// `tracestate` (a backend that drops separators reads them as one).
fn strip_aliases(up: &mut RequestHeader) {
    let forwarding = [&XFF, &XFP, &XFH, &X_REAL_IP, &FORWARDED];
    let squeezed = |n: &str| -> String {
        n.bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| b.to_ascii_lowercase() as char)
            .collect()
    };
    let doomed: Vec<HeaderName> = up
        .headers
        .keys()
        .filter(|n| {
            n.as_str()
                .bytes()
                .any(|b| !b.is_ascii_alphanumeric() && b != b'-')
        })
        .filter(|n| {
            let name = n.as_str().as_bytes();
            forwarding
                .iter()
                .any(|f| crate::identity::spelling_of(name, f.as_str().as_bytes()))
        })
        .chain(up.headers.keys().filter(|n| {
            let s = n.as_str();
            s != "traceparent"
                && s != "tracestate"
                && matches!(squeezed(s).as_str(), "traceparent" | "tracestate")
        }))
        .cloned()
        .collect();
    for n in doomed {
        up.remove_header(&n);
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(xff: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("host", "app.test").unwrap();
        for v in xff {
            r.append_header("x-forwarded-for", *v).unwrap();
        }
        r.insert_header("forwarded", "for=1.2.3.4").unwrap();
        r.insert_header("x-real-ip", "1.2.3.4").unwrap();
        r
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        let v: Vec<Str> = list.iter().map(|s| Str(s.to_string())).collect();
        TrustedProxies::compile(&v).unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_claim_an_address() {
        let t = trusted(&["10.0.0.0/8"]);
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let mut r = req(&["6.6.6.6"]);
        assert_eq!(t.client_ip(peer, &r), peer);
        t.apply(&mut r, Some(peer), false).unwrap();
        assert_eq!(r.headers.get("x-forwarded-for").unwrap(), "203.0.113.9");
        assert!(r.headers.get("forwarded").is_none() && r.headers.get("x-real-ip").is_none());
        assert_eq!(r.headers.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(r.headers.get("x-forwarded-host").unwrap(), "app.test");
    }

    #[test]
    fn other_spellings_never_reach_the_backend_trusted_or_not() {
        let spellings = [
            "x_forwarded_for",
            "X_Forwarded_Proto",
            "x-forwarded_host",
            "x_real_ip",
            "X.Forwarded.For",
            "x.real_ip",
            "trace_parent",
            "Trace-State",
            "trace.parent",
        ];
        for peer in ["203.0.113.9", "10.1.2.3"] {
            let mut r = req(&[]);
            for name in spellings {
                r.append_header(name.to_string(), "7.7.7.7").unwrap();
            }
            r.append_header("x_other_thing".to_string(), "kept")
                .unwrap();
            trusted(&["10.0.0.0/8"])
                .apply(&mut r, Some(peer.parse().unwrap()), false)
                .unwrap();
            let names: Vec<&str> = r.headers.keys().map(|n| n.as_str()).collect();
            assert!(
                !names
                    .iter()
                    .any(|n| n.contains(['_', '.']) && *n != "x_other_thing"),
                "{names:?}"
            );
            assert!(!names.iter().any(|n| n.starts_with("trace")), "{names:?}");
            assert!(names.contains(&"x_other_thing"));
            assert!(r
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .all(|v| v != "7.7.7.7"));
        }
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right() {
        let t = trusted(&["10.0.0.0/8", "192.168.1.1"]);
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let r = req(&["6.6.6.6, 198.51.100.7", "192.168.1.1"]);
        assert_eq!(
            t.client_ip(peer, &r),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let mut r2 = req(&["6.6.6.6, 198.51.100.7", "192.168.1.1"]);
        t.apply(&mut r2, Some(peer), true).unwrap();
        assert_eq!(
            r2.headers.get("x-forwarded-for").unwrap(),
            "6.6.6.6, 198.51.100.7, 192.168.1.1, 10.1.2.3"
        );
        assert!(
            r2.headers.get("forwarded").is_some(),
            "kept from a trusted proxy"
        );
        // Only trusted hops: the leftmost one is the client; garbage stops the walk.
        assert_eq!(
            t.client_ip(peer, &req(&["10.9.9.9"])),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            t.client_ip(peer, &req(&["unknown, 10.9.9.9"])),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(t.trusts(mapped));
        assert!(TrustedProxies::compile(&[Str("nope".into())]).is_err());
    }
}
