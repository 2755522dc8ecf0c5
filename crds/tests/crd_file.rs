//! The committed CRD is exactly what the Rust types generate, and documents every field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use modelserver_crds::{CRD_PATH, generate};
use serde_json::Value;

#[test]
fn committed_crd_matches_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_PATH);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", path.display()));
    let generated = generate::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "{CRD_PATH} differs from what the Rust types generate: run `make crds` and commit the result"
    );
}

/// Collects the paths of schema properties without a description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let child_path = format!("{path}.{name}");
            // metadata, apiVersion and kind are described by the API machinery itself.
            let machinery =
                path.is_empty() && matches!(name.as_str(), "metadata" | "apiVersion" | "kind");
            let described = child
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !described && !machinery {
                out.push(child_path.clone());
            }
            undocumented(child, &child_path, out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = schema.get(key).filter(|c| c.is_object()) {
            undocumented(child, &format!("{path}[]"), out);
        }
    }
}

#[test]
fn every_property_has_a_description() {
    let schema = serde_json::to_value(generate::openapi_schema().unwrap()).unwrap();
    let mut missing = Vec::new();
    undocumented(&schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description (they show up empty in kubectl explain):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_walker_finds_a_missing_description() {
    let schema = serde_json::json!({"properties": {"spec": {"description": "d", "properties": {"x": {"type": "string"}}}}});
    let mut missing = Vec::new();
    undocumented(&schema, "", &mut missing);
    assert_eq!(missing, vec![".spec.x".to_owned()]);
}
