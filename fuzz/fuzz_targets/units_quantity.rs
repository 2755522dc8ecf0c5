//! `parse_quantity_bytes` on any text never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelserver_units::parse_quantity_bytes;

fuzz_target!(|text: &str| {
    let _ = parse_quantity_bytes(text);
});
