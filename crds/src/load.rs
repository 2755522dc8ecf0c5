//! Reading a ModelServer manifest the way the API server would accept it: YAML, then the
//! structural schema (unknown fields rejected, as with `kubectl apply`'s strict validation), then
//! every validation rule.

use serde_json::Value;

use crate::{API_VERSION, KIND, ModelServer, generate, schema_check, validate};

/// Why a manifest is not an acceptable ModelServer.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The text is not YAML (or JSON).
    #[error("not valid YAML: {0}")]
    Yaml(Box<serde_saphyr::Error>),
    /// The document is some other kind of object.
    #[error(
        "not a ModelServer: apiVersion {api_version:?}, kind {kind:?} (expected {API_VERSION}, {KIND})"
    )]
    WrongKind {
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
    /// The document breaks the schema or a validation rule; one message per problem.
    #[error("invalid ModelServer:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
    /// The generated CRD has no schema (a bug in this crate).
    #[error("the generated CRD has no openAPIV3Schema")]
    NoSchema,
}

/// Parses and validates one ModelServer document.
pub fn from_yaml(text: &str) -> Result<ModelServer, LoadError> {
    let document: Value = serde_saphyr::from_str(text).map_err(|e| LoadError::Yaml(Box::new(e)))?;
    from_value(document)
}

/// Validates one ModelServer document already parsed into JSON.
pub fn from_value(document: Value) -> Result<ModelServer, LoadError> {
    let field = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if api_version != API_VERSION || kind != KIND {
        return Err(LoadError::WrongKind { api_version, kind });
    }
    let schema = generate::openapi_schema().ok_or(LoadError::NoSchema)?;
    let mut problems = schema_check::check(&schema, &document);
    if document
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none()
    {
        problems.insert(0, "metadata.name: Required value".to_owned());
    }
    if !problems.is_empty() {
        return Err(LoadError::Invalid(problems));
    }
    // The rules run on the document, before the typed read, as the API server runs them.
    let violations = validate::validate_document(&document);
    if !violations.is_empty() {
        return Err(LoadError::Invalid(
            violations.iter().map(ToString::to_string).collect(),
        ));
    }
    serde_json::from_value(document).map_err(|e| LoadError::Invalid(vec![e.to_string()]))
}
