use super::*;
use http::HeaderValue;

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
fn bodies_are_told_by_any_token_of_content_type_by_a_missing_or_unclean_one_and_json() {
    let k = |pairs: &[(&str, &str)]| kind(&headers(pairs));
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
        assert_eq!(k(&[("content-type", form)]), Ok(Some(Kind::Form)), "{form}");
    }
    for json in [
        "application/json",
        "application/merge-patch+json; charset=utf-8",
    ] {
        assert_eq!(k(&[("content-type", json)]), Ok(Some(Kind::Json)), "{json}");
    }
    for other in ["text/plain", "application/octet-stream", "image/png"] {
        assert_eq!(k(&[("content-type", other)]), Ok(None), "{other}");
    }
    // Werkzeug strips Unicode whitespace around the type; Rack reads an empty one as none.
    let mut nbsp = HeaderMap::new();
    let v = HeaderValue::from_bytes(b"application/x-www-form-urlencoded\xa0").unwrap();
    nbsp.insert(CONTENT_TYPE, v);
    assert_eq!(kind(&nbsp), Ok(Some(Kind::Unclean)));
    for unclean in ["", " ", "form", "a/b/c", "text/pl ain"] {
        assert_eq!(
            k(&[("content-type", unclean)]),
            Ok(Some(Kind::Unclean)),
            "{unclean:?}"
        );
    }
    // Rack reads a POST without a type as a form, when it has a body.
    assert_eq!(k(&[("content-length", "5")]), Ok(Some(Kind::Untyped)));
    assert_eq!(
        k(&[("transfer-encoding", "chunked")]),
        Ok(Some(Kind::Untyped))
    );
    assert_eq!(k(&[("content-length", "0")]), Ok(None));
    assert_eq!(k(&[]), Ok(None));
    // A compressed form is inflated by body-parser: refused.
    let url = ("content-type", "application/x-www-form-urlencoded");
    assert_eq!(
        k(&[url, ("content-encoding", "gzip")]),
        Err(Reason::MalformedBody)
    );
    assert_eq!(
        k(&[url, ("content-encoding", "identity")]),
        Ok(Some(Kind::Form))
    );
    // Compressed JSON too (express.json() inflates it), and charsets the scan cannot read
    // (the seventh review).
    let json = ("content-type", "application/json");
    assert_eq!(
        k(&[json, ("content-encoding", "gzip")]),
        Err(Reason::MalformedBody)
    );
    for bad in [
        "application/json; charset=utf-7",
        "application/x-www-form-urlencoded; charset=\"UTF-7\"",
        "application/json; charset=x-unknown",
    ] {
        assert_eq!(
            k(&[("content-type", bad)]),
            Err(Reason::MalformedBody),
            "{bad}"
        );
    }
    for good in [
        "application/json; charset=UTF-8",
        "application/json;charset=\"utf-16le\"",
        "application/x-www-form-urlencoded; charset=iso-8859-1",
    ] {
        assert!(k(&[("content-type", good)]).is_ok(), "{good}");
    }
    // A clean type that is neither a form nor JSON is not scanned, whatever its charset.
    assert_eq!(
        k(&[("content-type", "text/plain; charset=utf-7")]),
        Ok(None)
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
    "[method=DELETE",
    "_\0m\0e\0t\0h\0o\0d\0=\0D\0E\0L\0E\0T\0E\0",
    "--B\r\nContent-Disposition: form-data; name=\"_method\"\n\nDELETE\n--B--\n",
    "--B\r\nContent-Disposition: form-data; name*=UTF-8''%5F%6Dethod\r\n\r\nDELETE\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name*0=\"_me\"; name*1=\"thod\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"_meth\\od\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data;\r\n name*=x\r\n\r\nD\r\n--B--\r\n",
    "{\"_method\":\"DELETE\"}",
    "{\"\\u005fmethod\":\"DELETE\"}",
    "{\"\\u005F\\u006d\\u0065thod\":1}",
    "--B\r\nContent-Disposition: form-data; x=%0A; name*0=_me; name*1=thod\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=_method\r\n\r\nDELETE\r\n--B--\r\n",
    "_method%00x=DELETE",
    "_method\0x=DELETE",
    // PHP joins a part-header line without `:` to the one before it (the eighth review).
    "--B\r\nContent-Disposition: form-data; name=\"_met\r\nhod\"\r\n\r\nDELETE\r\n--B--\r\n",
    "--B\nContent-Disposition: form-data; name=_m\neth\nod\n\nDELETE\n--B--\n",
    "--B\r\nContent-Disposition: form-data; name=\".\r\nmethod\"\r\n\r\nDELETE\r\n--B--\r\n",
    "_method\r\n",
    // ... and reads each header line as a C string: a NUL drops the rest of it (the ninth).
    "--B\r\nContent-Disposition: form-data; name=\"_met\0X\r\nhod\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"_\0zz\r\nmethod\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"_m\r\ne\r\nthod\"\r\n\r\nD\r\n--B--\r\n",
    // PHP's blank line is LF LF or LF CR LF only; what follows a NUL never counts (the tenth).
    "--B\r\nContent-Disposition: form-data;\r\n\r\r\nname=\"_met\r\nhod\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"_met\0\"_meth\r\nhod\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"_met\0%\nhod\"\r\n\r\nD\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"_met\0\\u\r\nhod\"\r\n\r\nD\r\n--B--\r\n",
    // A bare CR does not end a PHP header line (the eleventh).
    "--B\r\nContent-Disposition: form-data; name=\"_met\0\rX\r\nhod\"\r\n\r\nD\r\n--B--\r\n",
    "--B\nContent-Disposition: form-data; name=_met\0\rX\nhod\n\nD\n--B--\n",
];

const FORWARDED: &[&str] = &[
    "title=hello&body=world",
    "paymentMethod=card",
    "a=paymentmethods",
    "payment_method=card&shipping-method=ups",
    "comment=I+like+this+method&church=Methodist",
    "+method=DELETE",
    "__method=DELETE",
    "a=1&_method",
    "{\"payment_method\":\"card\",\"notes\":\"a method\"}",
    "--B\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n\r\nx\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"C:\\Users\\me\\method.txt\"\r\n\r\nself._method = m\r\n--B--\r\n",
    "%%6D=1&50%=x",
    "--B\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--B--\r\n",
    "--B\r\nContent-Disposition: form-data; name=\"_met\r\n hod\"\r\n\r\nD\r\n--B--\r\n",
    // Line breaks outside part headers end names as any byte does (a textarea; the ninth).
    "comment=Results+(see+table).%0D%0AMethod%3A+we+sampled+10+users",
    "--B\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\nsee table.\r\nMethod: sampled\r\n--B--\r\n",
    "{\"comment\":\"see table.\r\nMethod: sampled\"}",
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

#[test]
fn part_header_lines_php_would_split_are_refused_in_multipart_bodies_only() {
    // PHP splits a part-header line longer than its 5 KiB buffer: `name=_method` then a header
    // `x: y`, where the scan would read `_methodx` (the tenth review).
    let pad = "A".repeat(5100);
    let long = format!(
        "--B\r\nContent-Disposition: form-data; a=\"{pad}\"; name=_methodx: y\r\n\r\nD\r\n--B--\r\n"
    );
    let b = || Scanner::new(true).with_boundary(b"B");
    assert!(b().feed(long.as_bytes()) < long.len());
    // A long value after the part headers is fine; so is a long line in a body that is not
    // multipart, whatever it says (an e-mail API's JSON may well name Content-Disposition).
    let value =
        format!("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{pad}\r\n--B--\r\n");
    assert_eq!(b().feed(value.as_bytes()), value.len());
    let json = format!(
        "{{\n  \"headers\": \"Content-Disposition: attachment\",\n  \"x\": [\n    1\n  ],\n  \"pad\": \"{pad}\",\n  \"t\": \"see.\\u0000\r\n_\r\nmethod\"\n}}"
    );
    assert_eq!(Scanner::new(false).feed(json.as_bytes()), json.len());
    // Every line after a boundary counts, not only from Content-Disposition on: PHP splits a
    // long header line before it, and `\u` or `%4` can hide the header's name from the scan.
    let before = format!(
        "--B\r\nX-Pad: {pad}\\uContent-Disposition: form-data; name=\"_met\r\nhod\"\r\n\r\nD\r\n--B--\r\n"
    );
    assert!(b().feed(before.as_bytes()) < before.len());
    // A file's contents are no part headers, whatever they say (a minified script, a HAR).
    let file = format!(
        "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.js\"\r\n\r\nh[\"content-disposition\"]=1;{pad}\r\n--B--\r\n"
    );
    assert_eq!(b().feed(file.as_bytes()), file.len());
    // PHP reads the preamble line by line through the same buffer, up to the first line that
    // is exactly `--B`: a 5 KiB line there could split into one (the twelfth review), even
    // after a fake part.
    for pre in [
        pad.clone(),
        format!("--X\r\n\r\n{pad}"),
        format!("--B \r\n{pad}"),
    ] {
        let split = format!("{pre}--B\r\nContent-Disposition: form-data; name=\"_met\r\nhod\"\r\n\r\nD\r\n--B--\r\n");
        assert!(b().feed(split.as_bytes()) < split.len(), "{}", &pre[..8]);
    }
    // Past the first `--B` line (a NUL ends it for PHP too), long lines are values.
    let nul =
        format!("--B\0x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{pad}\r\n--B--\r\n");
    assert_eq!(b().feed(nul.as_bytes()), nul.len());
    // Without a boundary PHP can read, the preamble never ends.
    assert!(Scanner::new(true).feed(file.as_bytes()) < file.len());
}

#[test]
fn the_boundary_is_read_as_php_reads_it() {
    let b = |pairs: &[(&str, &str)]| php_boundary(&headers(pairs));
    let one = |ct: &str| b(&[("content-type", ct)]).map(|v| String::from_utf8(v).unwrap());
    for (ct, want) in [
        ("multipart/form-data; boundary=BB", "BB"),
        ("multipart/form-data; boundary=\"a;b\"; x=1", "a;b"),
        ("multipart/form-data; boundary=BB, x", "BB"),
        ("multipart/form-data; boundary= BB", " BB"),
        ("multipart/form-data; Boundary=CC", "CC"),
        // The first `boundary`, wherever it is, and the next `=`.
        ("multipart/form-data; x-boundary-y=1; boundary=BB", "1"),
    ] {
        assert_eq!(one(ct).as_deref(), Some(want), "{ct}");
    }
    assert_eq!(one("multipart/form-data; boundary=\"open"), None);
    assert_eq!(one("multipart/form-data"), None);
    let two = [
        ("content-type", "multipart/form-data; boundary=A"),
        ("content-type", "text/plain"),
    ];
    assert_eq!(b(&two), None);
}
