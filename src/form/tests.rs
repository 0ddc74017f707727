use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

#[test]
fn form_bodies_are_told_by_any_token_of_content_type_or_by_a_body_without_one() {
    let f = |pairs: &[(&str, &str)]| is_form(&headers(pairs));
    for form in [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        "multipart/form-data; boundary=XyZ",
        "multipart/mixed; boundary=\"a b\"",
        "multipart/",
        // PHP cuts the type at `,` or a space; Werkzeug reads the first of two forms.
        "application/x-www-form-urlencoded,x",
        "text/plain application/x-www-form-urlencoded",
        "multipart/form-data; boundary=B; application/x-www-form-urlencoded",
    ] {
        assert_eq!(f(&[("content-type", form)]), Ok(true), "{form}");
    }
    for other in ["application/json", "text/plain", "application/octet-stream"] {
        assert_eq!(f(&[("content-type", other)]), Ok(false), "{other}");
    }
    // Rack reads a POST without a type as a form, when it has a body.
    assert_eq!(f(&[("content-length", "5")]), Ok(true));
    assert_eq!(f(&[("transfer-encoding", "chunked")]), Ok(true));
    assert_eq!(f(&[("content-length", "0")]), Ok(false));
    assert_eq!(f(&[]), Ok(false));
    // A compressed form is inflated by body-parser: refused.
    let url = ("content-type", "application/x-www-form-urlencoded");
    assert_eq!(
        f(&[url, ("content-encoding", "gzip")]),
        Err(Reason::MalformedBody)
    );
    assert_eq!(f(&[url, ("content-encoding", "identity")]), Ok(true));
    assert_eq!(
        f(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip")
        ]),
        Ok(false)
    );
}

/// Every way the two reviews got a framework to read `_method` from a body.
const REFUSED: &[&str] = &[
    "_method=DELETE",
    "a=1&_METHOD=delete",
    "%5Fmethod=DELETE",
    "_%6Dethod=DELETE",
    "%5f%6d%65%74%68%6f%64=DELETE",
    "\u{feff}_method=DELETE",
    "_method[]=DELETE",
    "_method%5B%5D=DELETE",
    ".method=DELETE",
    "+method=DELETE",
    "[method=DELETE",
    "_\0m\0e\0t\0h\0o\0d\0=\0D\0E\0L\0E\0T\0E\0",
    "--B\r\nContent-Disposition: form-data; name=\"_method\"\n\nDELETE\n--B--\n",
    "--B\r\nContent-Disposition: form-data; name*=UTF-8''%5F%6Dethod\r\n\r\nDELETE\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name*0=\"_me\"; name*1=\"thod\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"_meth\\od\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data;\r\n name*=x\r\n\r\nD\r\n--B--\r\n",
    "payment_method=card",
];

const FORWARDED: &[&str] = &[
    "title=hello&body=world",
    "paymentMethod=card",
    "a=paymentmethods",
    "%%6D=1&50%=x",
    "--B\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n2 * 3 = 6; a\\b\r\n--B--\r\n",
];

#[test]
fn every_known_spelling_of_a_method_field_is_cut_off_before_it_completes() {
    for body in REFUSED {
        let bytes = body.as_bytes();
        let at = Scanner::default().feed(bytes);
        assert!(at < bytes.len(), "{body:?} passed");
        // What was forwarded never holds the whole word (or the refused byte).
        assert!(!refuses_whole(&bytes[..at]), "{body:?}: {at}");
    }
    for body in FORWARDED {
        assert!(!refuses(body.as_bytes()), "{body:?} refused");
    }
}

/// Whether a scan refuses `bytes` when fed as it is (the prefix forwarded must not be refused
/// on its own).
fn refuses_whole(bytes: &[u8]) -> bool {
    refuses(bytes)
}

#[test]
fn chunk_boundaries_change_nothing() {
    for body in REFUSED.iter().chain(FORWARDED) {
        let whole = refuses(body.as_bytes());
        for split in 1..body.len() {
            let (a, b) = body.as_bytes().split_at(split);
            let mut s = Scanner::default();
            let first = s.feed(a);
            let refused = first < a.len() || s.feed(b) < b.len();
            assert_eq!(refused, whole, "{body:?} split at {split}");
        }
        let mut s = Scanner::default();
        let bytewise = body
            .as_bytes()
            .iter()
            .any(|b| s.feed(std::slice::from_ref(b)) == 0);
        assert_eq!(bytewise, whole, "{body:?} byte by byte");
    }
}
