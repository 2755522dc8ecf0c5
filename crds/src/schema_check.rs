//! Structural validation of a ModelServer document against the generated CRD schema, without an
//! API server: types, required fields, ranges, lengths, enums and unknown fields, reported in the
//! words the API server uses (so `render` and `kubectl apply` say the same thing).
//!
//! The CEL rules are not interpreted here; [`crate::rules`] holds their Rust twins.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

/// Checks `document` (a whole ModelServer) against `schema` (the CRD's openAPIV3Schema) and
/// returns one message per problem, in document order.
pub fn check(schema: &JSONSchemaProps, document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(schema, document, "", true, &mut problems);
    problems
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(schema: &JSONSchemaProps, value: &Value, path: &str, root: bool, out: &mut Vec<String>) {
    if schema.x_kubernetes_int_or_string == Some(true) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            out.push(format!(
                "{path}: Invalid value: {value}: {path} in body must be of type int-or-string"
            ));
        }
        return;
    }
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) && schema.properties.is_none() {
        return;
    }
    let expected = schema.type_.as_deref().unwrap_or_default();
    let type_ok = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        out.push(format!(
            "{path}: Invalid value: \"{}\": {path} in body must be of type {expected}: \"{}\"",
            json_type(value),
            json_type(value)
        ));
        return;
    }
    match value {
        Value::Object(map) => {
            for required in schema.required.iter().flatten() {
                if !map.contains_key(required) {
                    out.push(format!("{}: Required value", join(path, required)));
                }
            }
            for (key, child) in map {
                // metadata, apiVersion and kind are the API machinery's, checked elsewhere.
                if root && matches!(key.as_str(), "metadata" | "apiVersion" | "kind") {
                    continue;
                }
                let child_path = join(path, key);
                if let Some(child_schema) = schema.properties.as_ref().and_then(|p| p.get(key)) {
                    walk(child_schema, child, &child_path, false, out);
                } else if let Some(JSONSchemaPropsOrBool::Schema(values)) =
                    &schema.additional_properties
                {
                    walk(values, child, &child_path, false, out);
                } else if schema.x_kubernetes_preserve_unknown_fields != Some(true) {
                    out.push(format!("unknown field \"{child_path}\""));
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.min_items
                && (items.len() as i64) < min
            {
                out.push(format!(
                    "{path}: Invalid value: {}: {path} in body should have at least {min} items",
                    items.len()
                ));
            }
            if let Some(max) = schema.max_items
                && (items.len() as i64) > max
            {
                out.push(format!(
                    "{path}: Too many: {}: must have at most {max} items",
                    items.len()
                ));
            }
            if let Some(JSONSchemaPropsOrArray::Schema(item_schema)) = &schema.items {
                for (index, item) in items.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{index}]"), false, out);
                }
            }
        }
        Value::String(text) => {
            let chars = text.chars().count() as i64;
            if let Some(min) = schema.min_length
                && chars < min
            {
                out.push(format!(
                    "{path}: Invalid value: {value}: {path} in body should be at least {min} chars long"
                ));
            }
            if let Some(max) = schema.max_length
                && chars > max
            {
                out.push(format!(
                    "{path}: Invalid value: {value}: {path} in body may not be more than {max} chars long"
                ));
            }
            if let Some(allowed) = &schema.enum_
                && !allowed.iter().any(|a| a.0 == *value)
            {
                let list: Vec<String> = allowed.iter().map(|a| a.0.to_string()).collect();
                out.push(format!(
                    "{path}: Unsupported value: {value}: supported values: {}",
                    list.join(", ")
                ));
            }
        }
        Value::Number(number) => {
            if let Some(n) = number.as_f64() {
                if let Some(min) = schema.minimum
                    && n < min
                {
                    out.push(format!(
                        "{path}: Invalid value: {number}: {path} in body should be greater than or equal to {min}"
                    ));
                }
                if let Some(max) = schema.maximum
                    && n > max
                {
                    out.push(format!(
                        "{path}: Invalid value: {number}: {path} in body should be less than or equal to {max}"
                    ));
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(spec: Value) -> Vec<String> {
        let schema = crate::generate::openapi_schema().expect("schema");
        let document = json!({"apiVersion": "modelserver.dev/v1alpha1", "kind": "ModelServer",
            "metadata": {"name": "x"}, "spec": spec});
        check(&schema, &document)
    }

    #[test]
    fn a_minimal_spec_passes() {
        assert_eq!(
            problems(json!({"image": "i", "model": {"command": ["python"]}})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let found =
            problems(json!({"image": "i", "model": {"command": ["p"]}, "server": {"wrokers": 2}}));
        assert_eq!(
            found,
            vec!["unknown field \"spec.server.wrokers\"".to_owned()]
        );
    }

    #[test]
    fn ranges_types_lengths_enums_and_required_fields_are_checked() {
        let found = problems(json!({"model": {"command": []}, "replicas": "two",
            "imagePullPolicy": "Sometimes", "server": {"workers": 65, "executorThreads": 0}}));
        let text = found.join("\n");
        for expected in [
            "spec.image: Required value",
            "spec.model.command: Invalid value: 0: spec.model.command in body should have at least 1 items",
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer",
            "spec.imagePullPolicy: Unsupported value: \"Sometimes\"",
            "spec.server.workers: Invalid value: 65: spec.server.workers in body should be less than or equal to 64",
            "spec.server.executorThreads: Invalid value: 0: spec.server.executorThreads in body should be greater than or equal to 1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
