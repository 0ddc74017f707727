//! Request-target hygiene: whatever the bytes, an accepted path has no segment a backend could
//! normalise away, nothing left to decode, and a matching key the same length as the path.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = keygate::path::check(raw) {
        let segs: Vec<&str> = p.decoded.split('/').skip(1).collect();
        for (n, s) in segs.iter().enumerate() {
            assert!(*s != "." && *s != "..", "{raw:?}");
            assert!(!s.is_empty() || n == segs.len() - 1, "{raw:?}");
        }
        assert!(!p.decoded.contains(['%', ';', '\\', '#']), "{raw:?}");
        assert!(!p.decoded.bytes().any(|b| b < 0x20 || b == 0x7f), "{raw:?}");
        assert_eq!(p.key().len(), p.trimmed().len());
        // Idempotent: the decoded path is itself a valid path with the same key.
        let again = keygate::path::check(&p.decoded).expect("a decoded path stays valid");
        assert_eq!(again.key(), p.key());
    }
});
