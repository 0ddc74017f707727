//! RFC 6455 frame headers: parsing arbitrary bytes never panics, claims no more header than it
//! read, and agrees with keygate's encoder on every frame it encodes.
#![no_main]
use keygate::websocket::{encode, parse_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(h) = parse_header(data) {
        assert!(h.header_len >= 2 && h.header_len <= 14 && h.header_len <= data.len());
    }
    if data.len() < 5 {
        return;
    }
    let op = data[0] & 0x0f;
    let mask = [data[1], data[2], data[3], data[4]];
    let payload = &data[5..];
    let frame = encode(op, payload, (data[0] & 0x80 != 0).then_some(mask));
    let h = parse_header(&frame).expect("an encoded frame parses");
    assert_eq!(h.len as usize, payload.len());
    assert_eq!(h.header_len + payload.len(), frame.len());
    assert_eq!(h.opcode, op);
    assert!(h.fin);
});
