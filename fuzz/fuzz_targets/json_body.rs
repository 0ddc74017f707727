//! The bodies keygate reads (`bind_json`, `json_body`): the first line is a JSON Pointer (with
//! `*`), the rest a request body. Whatever the bytes: no panic; an accepted body is what
//! serde_json reads too; `get` agrees with serde_json's RFC 6901 `Value::pointer` for pointers
//! without `*`; every value `select` returns is reachable, and `all_equal` holds exactly when
//! every selected value is the given string.
#![no_main]
use keygate::json_body::{all_equal, parse, Pointer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (first, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let Ok(doc) = parse(body) else {
        return;
    };
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .as_ref(),
        Some(&doc)
    );
    let Ok(text) = std::str::from_utf8(first) else {
        return;
    };
    let Ok(p) = Pointer::parse(text) else {
        return;
    };
    if !p.has_every() {
        assert_eq!(p.get(&doc), doc.pointer(text));
        assert_eq!(p.select(&doc), p.get(&doc).map(|v| vec![v]));
    }
    if let Some(values) = p.select(&doc) {
        let holds = values.iter().all(|v| v.as_str() == Some("u1"));
        assert_eq!(all_equal(std::slice::from_ref(&p), &doc, "u1"), holds);
    } else {
        assert!(!all_equal(std::slice::from_ref(&p), &doc, "u1"));
    }
});
