//! Evaluates the CEL rules of [`crate::rules`], attached to the generated schema, with a CEL
//! interpreter (`kube`'s, the one `kube::core::cel` provides): the same text the API server runs,
//! so `render` and the operator reject exactly what `kubectl apply` rejects, with the same
//! message, and no rule has a hand-written twin to drift from.

use std::sync::LazyLock;

use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde_json::Value;

use crate::{ModelServer, generate};

/// One broken rule: where, and the rule's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The JSON path of the field the rule is attached to (empty for the object itself).
    pub path: String,
    /// The rule's message.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The schema with its rules compiled, once per process.
static COMPILED: LazyLock<Result<CompiledSchema, String>> = LazyLock::new(|| {
    let schema = generate::openapi_schema()
        .ok_or_else(|| "the generated CRD has no openAPIV3Schema".to_owned())?;
    let schema = serde_json::to_value(schema).map_err(|e| e.to_string())?;
    let compiled = compile_schema(&schema);
    Ok(compiled)
});

/// Runs every rule over a ModelServer and returns the broken ones.
pub fn validate(object: &ModelServer) -> Vec<Violation> {
    match serde_json::to_value(object) {
        Ok(document) => validate_document(&document),
        Err(e) => vec![Violation {
            path: String::new(),
            message: format!("the object does not serialize: {e}"),
        }],
    }
}

/// Runs every rule over a ModelServer document (a whole object, as JSON) and returns the broken
/// ones. A rule that cannot be evaluated counts as broken, with the interpreter's reason.
pub fn validate_document(document: &Value) -> Vec<Violation> {
    let compiled = match &*COMPILED {
        Ok(compiled) => compiled,
        Err(e) => {
            return vec![Violation {
                path: String::new(),
                message: e.clone(),
            }];
        }
    };
    match Validator::new().validate_compiled(compiled, document, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| Violation {
                path: e.field_path,
                message: e.message,
            })
            .collect(),
    }
}
