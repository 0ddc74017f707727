//! The form-body scan (`keygate::form::Scanner`): the first byte splits the rest into two
//! chunks. Whatever the bytes: no panic; the answer does not depend on where the chunks split;
//! what would be forwarded before a refusal is never refused on its own; and a body with a
//! form field named `_method` is always refused.
#![no_main]
use keygate::form::{refuses, Scanner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let whole = refuses(body);
    let at = usize::from(split).min(body.len());
    let (a, b) = body.split_at(at);
    let mut s = Scanner::default();
    let first = s.feed(a);
    let chunked = first < a.len() || s.feed(b) < b.len();
    assert_eq!(chunked, whole);
    let forwarded = Scanner::default().feed(body);
    assert!(!refuses(&body[..forwarded]));
    // A field the WHATWG form parser reads as `_method` (with a value, or as an array).
    let named = form_urlencoded::parse(body).any(|(k, v)| {
        let k = k.trim_start_matches('\u{feff}').to_ascii_lowercase();
        (k == "_method" && !v.is_empty()) || k.starts_with("_method[")
    });
    if named {
        assert!(whole);
    }
});
