//! `shims/libz-ng-sys` replaces zlib-ng with zlib-rs under flate2's `zlib-ng` backend (the one
//! pingora-core selects). keygate itself never compresses, but pingora links the code: prove that
//! the shim's `z_stream` cast is sound by round-tripping data through flate2's C-API backend.

use std::io::{Read, Write};

#[test]
fn gzip_and_deflate_round_trip_through_the_shim() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 ^ (i >> 9) as u8).collect();
    for level in [0, 1, 6, 9] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        if level > 0 {
            assert!(gz.len() < data.len(), "level {level} compressed nothing");
        }
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, data, "level {level}");
    }
    // Raw deflate with a preset dictionary exercises deflateSetDictionary / inflateSetDictionary.
    let dict = b"keygate keygate keygate";
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    c.set_dictionary(dict).unwrap();
    let mut packed = Vec::with_capacity(1024);
    c.compress_vec(b"keygate keygate!", &mut packed, flate2::FlushCompress::Finish).unwrap();
    let mut d = flate2::Decompress::new(false);
    d.set_dictionary(dict).unwrap();
    let mut unpacked = Vec::with_capacity(1024);
    d.decompress_vec(&packed, &mut unpacked, flate2::FlushDecompress::Finish).unwrap();
    assert_eq!(unpacked, b"keygate keygate!");
}
