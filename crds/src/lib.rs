//! The ModelServer API (`modelserver.dev/v1alpha1`): its Rust types, its validation rules (CEL,
//! evaluated by the API server and, through [`validate`], by `render` and the operator), its
//! defaults, and the generated CRD.

pub mod defaults;
pub mod generate;
pub mod load;
pub mod rules;
pub mod schema_check;
pub mod spec;
pub mod status;
pub mod traffic;
pub mod validate;
pub mod values;

pub use spec::{ModelServer, ModelServerSpec};
pub use status::ModelServerStatus;

/// The API group.
pub const GROUP: &str = "modelserver.dev";
/// The API version within the group.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of a ModelServer.
pub const API_VERSION: &str = "modelserver.dev/v1alpha1";
/// `kind` of a ModelServer.
pub const KIND: &str = "ModelServer";
/// Path of the committed CRD, relative to the repository root.
pub const CRD_PATH: &str = "crds/modelserver.dev_modelservers.yaml";
