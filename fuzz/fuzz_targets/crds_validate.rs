//! Any JSON document through what `modelserver-operator render` and the reconciler do with a
//! ModelServer: the structural schema check, deserialization and every validation rule, and the
//! rules alone on whatever deserializes (a stored object may predate a rule). None of it may
//! panic. Seeds: every example, as JSON (`make fuzz` writes them).
//!
//! `load::from_value` regenerates the CRD schema on every call, which would cap the fuzzer at a
//! few hundred runs a second; most inputs take the same steps with the schema built once, and one
//! input in 64 goes through `load::from_value` itself.
#![no_main]

use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use libfuzzer_sys::fuzz_target;
use modelserver_crds::{ModelServer, generate, load, schema_check, validate};

fn schema() -> &'static JSONSchemaProps {
    static SCHEMA: OnceLock<JSONSchemaProps> = OnceLock::new();
    SCHEMA.get_or_init(|| generate::openapi_schema().expect("the generated CRD has a schema"))
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    for problem in schema_check::check(schema(), &document) {
        let _ = problem;
    }
    if let Ok(object) = serde_json::from_value::<ModelServer>(document.clone()) {
        for violation in validate::validate(&object) {
            let _ = violation.to_string();
        }
    }
    if fnv(bytes) % 64 == 0
        && let Err(error) = load::from_value(document)
    {
        let _ = error.to_string();
    }
});
