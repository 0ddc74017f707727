//! Table-driven tests of the derivation: targets, overrides, and each front's headers.

use super::*;

fn req(method: &str, target: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build(method, target, None).unwrap();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        r.append_header("host", "app.test").unwrap();
    }
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

#[test]
fn targets_split_as_the_backend_reads_them_or_are_refused() {
    let ok: &[(&[u8], &str, Option<&str>)] = &[
        (b"/", "/", None),
        (b"/a/b?x=1&y", "/a/b", Some("x=1&y")),
        (b"/a?", "/a", Some("")),
        (b"http://h.example/admin?q", "/admin", Some("q")),
        (b"HTTPS://h.example:8443/x", "/x", None),
        (b"http://h.example/", "/", None),
    ];
    for (raw, path, query) in ok {
        assert_eq!(
            split_target(raw),
            Some((*path, *query)),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let refused: &[&[u8]] = &[
        b"admin/users",
        b"*",
        b"h.example:443",
        b"",
        b"?x",
        b"http://h.example",
        b"http://h.example?x",
        b"http:///x",
        b"http://user@h.example/x",
        b"ftp://h.example/x",
        b"/a#frag",
        b"/caf\xc3\xa9",
        b"/a b",
        b"/a\tb",
    ];
    for raw in refused {
        assert_eq!(split_target(raw), None, "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn the_proxy_door_decides_about_the_raw_target() {
    // pingora parses `admin/users` to the path `/`; the backend reads `admin/users`.
    let r = req("DELETE", b"admin/users", &[]);
    assert_eq!(Canonical::proxied(&r).unwrap_err(), Reason::MalformedPath);
    let r = req("GET", b"http://backend.internal/admin/users?a=1", &[]);
    let c = Canonical::proxied(&r).unwrap();
    assert_eq!(
        (&*c.path, c.query.as_deref()),
        ("/admin/users", Some("a=1"))
    );
}

#[test]
fn every_override_spelling_and_place_is_found_and_must_agree() {
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [u8],
        Result<Option<Method>, Reason>,
    );
    let cases: &[Case] = &[
        (&[], b"/x", Ok(None)),
        (
            &[("X-HTTP-Method-Override", "delete")],
            b"/x",
            Ok(Some(Method::DELETE)),
        ),
        (
            &[("X_HTTP_Method_Override", "DELETE")],
            b"/x",
            Ok(Some(Method::DELETE)),
        ),
        (&[("x.http.method", " PUT ")], b"/x", Ok(Some(Method::PUT))),
        (
            &[("X-Method-Override", "PATCH")],
            b"/x",
            Ok(Some(Method::PATCH)),
        ),
        (&[], b"/items/7?_method=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/items/7?%5Fmethod=delete", Ok(Some(Method::DELETE))),
        (&[], b"/items/7?_METHOD=DELETE", Ok(Some(Method::DELETE))),
        (
            &[("X-HTTP-Method-Override", "DELETE")],
            b"/x?_method=DELETE",
            Ok(Some(Method::DELETE)),
        ),
        (
            &[("X-HTTP-Method-Override", "DELETE")],
            b"/x?_method=PUT",
            Err(Reason::MalformedRequest),
        ),
        (
            &[("X-HTTP-Method", "PUT"), ("X-Method-Override", "GET")],
            b"/x",
            Err(Reason::MalformedRequest),
        ),
        (
            &[("X-HTTP-Method-Override", "DELETE, PUT")],
            b"/x",
            Err(Reason::MalformedRequest),
        ),
        (
            &[("X-HTTP-Method-Override", "")],
            b"/x",
            Err(Reason::MalformedRequest),
        ),
        (&[("X-HTTP-Method-Overrides", "DELETE")], b"/x", Ok(None)),
        // PHP's name mangling and qs/PHP arrays (the fifth review).
        (&[], b"/x?.method=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?%20_method=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?[method=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?_method[]=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?_method%5B0%5D=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?%EF%BB%BF_method=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?_method_=DELETE", Ok(None)),
        (&[], b"/x?payment_method=card", Ok(None)),
        (&[], b"/x?a[_method]=DELETE", Ok(None)),
        (&[], b"/x?_method%00=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?.method%00x=DELETE", Ok(Some(Method::DELETE))),
        // qs reads a leading bracketed key as the name (the eighth review).
        (&[], b"/x?[_method]=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?%5B_method%5D=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?[_method][]=PUT", Ok(Some(Method::PUT))),
        (&[], b"/x?[_method]x=DELETE", Ok(Some(Method::DELETE))),
        (&[], b"/x?[method]=DELETE", Ok(None)),
    ];
    for (headers, target, want) in cases {
        let r = req("POST", target, headers);
        let got = Canonical::proxied(&r).map(|c| c.overridden);
        assert_eq!(
            &got,
            want,
            "{headers:?} {}",
            String::from_utf8_lossy(target)
        );
    }
}

#[test]
fn each_front_reads_its_own_headers_only() {
    let spoof = [
        ("X-Forwarded-Uri", "/healthz"),
        ("X-Forwarded-Method", "GET"),
    ];
    let nginx = [
        ("X-Original-URI", "/admin/users/42?x=1"),
        ("X-Original-Method", "DELETE"),
    ];
    // nginx: its family, whatever the client added of another.
    let h: Vec<(&str, &str)> = spoof.iter().chain(nginx.iter()).copied().collect();
    let r = req("GET", b"/auth", &h);
    let c = Canonical::forwarded(Front::Nginx, &r).unwrap();
    assert_eq!((c.method.as_str(), &*c.path), ("DELETE", "/admin/users/42"));
    // traefik: X-Forwarded-* only; nginx's headers are ignored.
    let c = Canonical::forwarded(Front::Traefik, &r).unwrap();
    assert_eq!((c.method.as_str(), &*c.path), ("GET", "/healthz"));
    // envoy: the request itself.
    let r = req("DELETE", b"/admin/users/42", &spoof);
    let c = Canonical::forwarded(Front::Envoy, &r).unwrap();
    assert_eq!((c.method.as_str(), &*c.path), ("DELETE", "/admin/users/42"));
    // Missing, repeated or malformed headers of the front's family.
    let bad: &[&[(&str, &str)]] = &[
        &[("X-Original-URI", "/a")],
        &[("X-Original-Method", "GET")],
        &[
            ("X-Original-URI", "/a"),
            ("X-Original-URI", "/b"),
            ("X-Original-Method", "GET"),
        ],
        &[("X-Original-URI", "a/b"), ("X-Original-Method", "GET")],
        &[
            ("X-Original-URI", "/a"),
            ("X-Original-Method", "GET"),
            ("X-Original-Method", "GET"),
        ],
        &[("X-Original-URI", "/a"), ("X-Original-Method", "G E T")],
        &[("X-Original-URI", ""), ("X-Original-Method", "GET")],
    ];
    for h in bad {
        let r = req("GET", b"/auth", h);
        assert_eq!(
            Canonical::forwarded(Front::Nginx, &r).unwrap_err(),
            Reason::MalformedRequest,
            "{h:?}"
        );
    }
    let r = req(
        "GET",
        b"/auth",
        &[
            ("X-Forwarded-Uri", "/a"),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Host", "a"),
            ("X-Forwarded-Host", "b"),
        ],
    );
    assert_eq!(
        Canonical::forwarded(Front::Traefik, &r).unwrap_err(),
        Reason::MalformedRequest
    );
}

proptest::proptest! {
    /// Whatever the bytes, an accepted target's path starts with `/` and is a suffix of the
    /// raw target up to its query: nothing is invented or reordered.
    #[test]
    fn accepted_targets_are_slices_of_the_raw_bytes(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
        if let Some((path, query)) = split_target(&raw) {
            proptest::prop_assert!(path.starts_with('/'));
            let text = std::str::from_utf8(&raw).unwrap();
            let rebuilt = match query { Some(q) => format!("{path}?{q}"), None => path.to_string() };
            proptest::prop_assert!(text.ends_with(&rebuilt));
        }
    }
}

#[test]
fn one_host_is_required_as_rfc_9112_says() {
    let mut none = RequestHeader::build("GET", b"/", None).unwrap();
    assert_eq!(
        Canonical::proxied(&none).unwrap_err(),
        Reason::MalformedRequest
    );
    none.set_version(Version::HTTP_10);
    assert!(Canonical::proxied(&none).is_ok(), "HTTP/1.0 needs none");
    let two = req("GET", b"/", &[("host", "a.test"), ("Host", "b.test")]);
    assert_eq!(
        Canonical::proxied(&two).unwrap_err(),
        Reason::MalformedRequest
    );
    assert!(Canonical::proxied(&req("GET", b"/", &[])).is_ok());
}
