//! Method overrides in POSTed forms (`keygate::form`): the first line is a `Content-Type`, the
//! rest a body. Whatever the bytes: no panic; a method found is named by a `_method` field the
//! body mentions; a multipart body read without finding one never mentions `_method`; an
//! urlencoded body's answer is what the WHATWG form parser's `_method` pairs say.
#![no_main]
use keygate::form::method_override;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (first, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let Ok(content_type) = std::str::from_utf8(first) else {
        return;
    };
    let Ok(found) = method_override(content_type, body) else {
        return;
    };
    // The documented rule: any token of the type (split at `;`, `,` and whitespace) counts.
    let tokens: Vec<String> = content_type
        .split([';', ',', ' ', '\t'])
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let pairs: Vec<String> = form_urlencoded::parse(body)
        .filter(|(k, _)| k.eq_ignore_ascii_case("_method"))
        .map(|(_, v)| v.trim().to_ascii_uppercase())
        .collect();
    let mentions = body.windows(7).any(|w| w.eq_ignore_ascii_case(b"_method"));
    if tokens
        .iter()
        .any(|t| t == "application/x-www-form-urlencoded")
    {
        match &found {
            Some(m) => assert!(!pairs.is_empty() && pairs.iter().all(|p| p == m.as_str())),
            None => assert!(pairs.is_empty()),
        }
    } else if tokens.iter().any(|t| t.starts_with("multipart/")) {
        assert_eq!(found.is_some(), mentions);
    } else {
        assert!(found.is_none());
    }
});
