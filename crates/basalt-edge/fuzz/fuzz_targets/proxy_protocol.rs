//! The PROXY protocol parsers (`proxy_protocol::parse_v1`, `parse_v2`) over any bytes:
//! the first byte picks the version. Nothing panics, and an address read from a v1 line
//! is one its own text names.
#![no_main]

use basalt_edge::proxy_protocol::{parse_v1, parse_v2};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        if let Ok(Some(addr)) = parse_v1(data) {
            let text = String::from_utf8_lossy(data);
            assert!(text.contains(&addr.port().to_string()));
        }
    } else if data.len() >= 4 {
        let head = [data[0], data[1], data[2], data[3]];
        let _ = parse_v2(head, &data[4..]);
    }
});
