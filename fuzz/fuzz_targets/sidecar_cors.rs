//! The sidecar's CORS policy from arbitrary `MODELSERVER_CORS_*` values (origins, methods,
//! headers, credentials, max age) never panics, and the policy it builds answers any Origin
//! header without panicking. Read-only use of `modelserver_sidecar::cors`.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use modelserver_sidecar::config::CorsArgs;
use modelserver_sidecar::cors;

#[derive(Debug, Arbitrary)]
struct Input {
    allow_origins: Vec<String>,
    allow_methods: Vec<String>,
    allow_headers: Vec<String>,
    allow_credentials: bool,
    max_age_secs: u32,
    request_origin: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let args = CorsArgs {
        allow_origins: input.allow_origins,
        allow_methods: input.allow_methods,
        allow_headers: input.allow_headers,
        allow_credentials: input.allow_credentials,
        max_age: Duration::from_secs(u64::from(input.max_age_secs)),
    };
    if let Ok(Some(policy)) = cors::policy(&args)
        && let Ok(origin) = http::HeaderValue::from_bytes(&input.request_origin)
    {
        let _ = policy.origins.allows(&origin);
    }
});
