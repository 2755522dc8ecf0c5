//! Every ModelServer the API server would accept (schema and validation rules pass) renders
//! without panicking, and its children serialize: the reconciler runs `render` on whatever is
//! stored, so a panic here would take the controller down. Seeds: every example, as JSON.
#![no_main]

use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use libfuzzer_sys::fuzz_target;
use modelserver_crds::{ModelServer, generate, schema_check, validate};
use modelserver_operator::render::{RenderConfig, render};

fn schema() -> &'static JSONSchemaProps {
    static SCHEMA: OnceLock<JSONSchemaProps> = OnceLock::new();
    SCHEMA.get_or_init(|| generate::openapi_schema().expect("the generated CRD has a schema"))
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    if !schema_check::check(schema(), &document).is_empty() {
        return;
    }
    let Ok(object) = serde_json::from_value::<ModelServer>(document) else {
        return;
    };
    if !validate::validate(&object).is_empty() {
        return;
    }
    if let Ok(children) = render(&object, &RenderConfig::default()) {
        let _ = children.to_yaml();
    }
});
