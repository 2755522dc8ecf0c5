//! `parse_duration` on any text never panics, and what it accepts survives a round trip through
//! `format_duration` (the operator renders durations with it and the sidecar parses them back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelserver_units::{format_duration, parse_duration};

fuzz_target!(|text: &str| {
    if let Ok(duration) = parse_duration(text) {
        let formatted = format_duration(duration);
        assert_eq!(
            parse_duration(&formatted),
            Ok(duration),
            "{text:?} -> {formatted:?}"
        );
    }
});
