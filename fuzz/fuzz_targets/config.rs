//! Config loading: arbitrary YAML never panics the loader or the compile step; every failure is
//! an error with a file, line and field path.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = keygate::ruleset::load_str(text, "fuzz.yaml") {
        assert!(e.to_string().starts_with("fuzz.yaml"), "{e}");
    }
});
