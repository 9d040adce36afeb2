//! The HTTP/1 request head parser the fast path decides with (`wire::head`): any bytes,
//! under the listener's limits. Nothing panics; a complete head never claims more bytes
//! than it was given, and its path and header map can be read.
#![no_main]

use basalt_edge::wire::head::{Parsed, parse_request, request_slots};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut slots = request_slots();
    if let Parsed::Plain(req) = parse_request(data, &mut slots, 16 * 1024, 100) {
        assert!(req.len <= data.len());
        let _ = req.path();
        let _ = req.header_map();
    }
});
