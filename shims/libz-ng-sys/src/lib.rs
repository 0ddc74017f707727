//! The `libz-ng-sys` API that flate2 uses, backed by `libz-rs-sys` (zlib-rs), so that building
//! keygate needs no cmake and no C zlib.
//!
//! flate2 (feature `zlib-ng`) builds `z_stream` literals with non-nullable `zalloc`/`zfree`, as
//! libz-ng-sys declares them, while zlib-rs declares them `Option<fn>`. Both have the same ABI
//! (a non-null function pointer), so [`z_stream`] below has zlib-rs's layout with libz-ng-sys's
//! field types, and each function casts the stream pointer and forwards. Everything else (the
//! `Z_*` constants, `uInt`, `zlibVersion`) is zlib-rs's own.
#![no_std]
#![allow(non_camel_case_types, non_snake_case, clippy::missing_safety_doc)]

use core::ffi::{c_char, c_int};

pub use libz_rs_sys::{
    alloc_func, free_func, internal_state, uInt, uLong, voidpf, zlibVersion, Bytef, Z_BLOCK,
    Z_BUF_ERROR, Z_DATA_ERROR, Z_DEFAULT_STRATEGY, Z_DEFLATED, Z_FINISH, Z_FULL_FLUSH,
    Z_MEM_ERROR, Z_NEED_DICT, Z_NO_FLUSH, Z_OK, Z_PARTIAL_FLUSH, Z_STREAM_END, Z_STREAM_ERROR,
    Z_SYNC_FLUSH,
};

/// zlib's `z_stream`, laid out exactly as `libz_rs_sys::z_stream` (checked below).
#[repr(C)]
pub struct z_stream {
    pub next_in: *mut Bytef,
    pub avail_in: uInt,
    pub total_in: uLong,
    pub next_out: *mut Bytef,
    pub avail_out: uInt,
    pub total_out: uLong,
    pub msg: *mut c_char,
    pub state: *mut internal_state,
    pub zalloc: alloc_func,
    pub zfree: free_func,
    pub opaque: voidpf,
    pub data_type: c_int,
    pub adler: uLong,
    pub reserved: uLong,
}

// The cast in `rs` is sound only while both structs have one layout.
const _: () = {
    assert!(core::mem::size_of::<z_stream>() == core::mem::size_of::<libz_rs_sys::z_stream>());
    assert!(core::mem::align_of::<z_stream>() == core::mem::align_of::<libz_rs_sys::z_stream>());
};

fn rs(strm: *mut z_stream) -> *mut libz_rs_sys::z_stream {
    strm.cast()
}

pub unsafe extern "C" fn deflate(strm: *mut z_stream, flush: c_int) -> c_int {
    libz_rs_sys::deflate(rs(strm), flush)
}
pub unsafe extern "C" fn deflateEnd(strm: *mut z_stream) -> c_int {
    libz_rs_sys::deflateEnd(rs(strm))
}
pub unsafe extern "C" fn deflateReset(strm: *mut z_stream) -> c_int {
    libz_rs_sys::deflateReset(rs(strm))
}
pub unsafe extern "C" fn deflateParams(strm: *mut z_stream, level: c_int, strategy: c_int) -> c_int {
    libz_rs_sys::deflateParams(rs(strm), level, strategy)
}
pub unsafe extern "C" fn deflateSetDictionary(
    strm: *mut z_stream,
    dictionary: *const Bytef,
    len: uInt,
) -> c_int {
    libz_rs_sys::deflateSetDictionary(rs(strm), dictionary, len)
}
pub unsafe extern "C" fn deflateInit2_(
    strm: *mut z_stream,
    level: c_int,
    method: c_int,
    window_bits: c_int,
    mem_level: c_int,
    strategy: c_int,
    version: *const c_char,
    stream_size: c_int,
) -> c_int {
    libz_rs_sys::deflateInit2_(
        rs(strm),
        level,
        method,
        window_bits,
        mem_level,
        strategy,
        version,
        stream_size,
    )
}
pub unsafe extern "C" fn inflate(strm: *mut z_stream, flush: c_int) -> c_int {
    libz_rs_sys::inflate(rs(strm), flush)
}
pub unsafe extern "C" fn inflateEnd(strm: *mut z_stream) -> c_int {
    libz_rs_sys::inflateEnd(rs(strm))
}
pub unsafe extern "C" fn inflateReset(strm: *mut z_stream) -> c_int {
    libz_rs_sys::inflateReset(rs(strm))
}
pub unsafe extern "C" fn inflateReset2(strm: *mut z_stream, window_bits: c_int) -> c_int {
    libz_rs_sys::inflateReset2(rs(strm), window_bits)
}
pub unsafe extern "C" fn inflateSetDictionary(
    strm: *mut z_stream,
    dictionary: *const Bytef,
    len: uInt,
) -> c_int {
    libz_rs_sys::inflateSetDictionary(rs(strm), dictionary, len)
}
pub unsafe extern "C" fn inflateInit2_(
    strm: *mut z_stream,
    window_bits: c_int,
    version: *const c_char,
    stream_size: c_int,
) -> c_int {
    libz_rs_sys::inflateInit2_(rs(strm), window_bits, version, stream_size)
}
