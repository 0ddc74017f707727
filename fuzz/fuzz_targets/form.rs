//! The form-body scan (`keygate::form::Scanner`): the first byte splits the rest into two
//! chunks. Whatever the bytes: no panic; the answer does not depend on where the chunks split;
//! what would be forwarded before a refusal is never refused on its own; and a body whose
//! percent-decoded text holds `_method` is always refused.
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
    let decoded: Vec<String> = form_urlencoded::parse(body)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let named = decoded
        .iter()
        .any(|kv| kv.to_ascii_lowercase().contains("_method"));
    if named {
        assert!(whole);
    }
});
