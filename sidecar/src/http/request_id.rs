//! Request ids for requests that arrive without one: random UUID v4 text, as
//! `tower_http::request_id::MakeRequestUuid` makes, but from a per-process generator seeded once
//! from the operating system's randomness, so generating one costs no system call (the `uuid`
//! crate asks the kernel for 16 random bytes per id).

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

/// Makes UUID v4 request ids (lowercase, hyphenated), unique within the process and
/// unpredictable across processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRequestUuid;

impl MakeRequestId for MakeRequestUuid {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_bytes(&uuid_v4_text(next_random()))
            .ok()
            .map(RequestId::new)
    }
}

/// Seeds and counter of the generator.
struct Generator {
    seeds: [u64; 2],
    counter: AtomicU64,
}

fn generator() -> &'static Generator {
    static GENERATOR: OnceLock<Generator> = OnceLock::new();
    GENERATOR.get_or_init(|| Generator {
        // `RandomState` keys come from the operating system's randomness once per process.
        seeds: [
            RandomState::new().hash_one(0u64),
            RandomState::new().hash_one(1u64),
        ],
        counter: AtomicU64::new(0),
    })
}

/// SplitMix64's finaliser: a bijection on `u64`, so distinct inputs give distinct outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 128 random-looking bits, never the same twice in a process.
pub(crate) fn next_random() -> u128 {
    let g = generator();
    let n = g.counter.fetch_add(1, Ordering::Relaxed);
    let high = mix(g.seeds[0].wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let low = mix(g.seeds[1] ^ n);
    (u128::from(high) << 64) | u128::from(low)
}

/// `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx` (RFC 9562 version 4, variant 10).
fn uuid_v4_text(bits: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = bits.to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ids_are_version_4_uuids_and_distinct() {
        let mut make = MakeRequestUuid;
        let request = Request::new(());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = make.make_request_id(&request).unwrap();
            let text = id.header_value().to_str().unwrap().to_string();
            assert_eq!(text.len(), 36, "{text}");
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(groups[2].starts_with('4'), "version 4: {text}");
            assert!("89ab".contains(&groups[3][..1]), "variant: {text}");
            assert!(text.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
            assert!(!text.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(seen.insert(text));
        }
    }
}
