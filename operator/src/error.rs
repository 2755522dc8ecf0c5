//! Errors of the operator crate.

/// Why a ModelServer could not be rendered into its children.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The ModelServer has no name.
    #[error("the ModelServer has no metadata.name")]
    MissingName,
    /// A value the validation rules refuse (reported as status reason InvalidSpec).
    #[error("invalid spec: {message}")]
    InvalidSpec {
        /// What is wrong, naming the field.
        message: String,
    },
}

/// Why `modelserver-operator render` failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The manifest could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not a valid ModelServer.
    #[error("{path}: {source}")]
    Load {
        /// The file.
        path: String,
        /// What is wrong with it.
        source: modelserver_crds::load::LoadError,
    },
    /// The file holds no ModelServer.
    #[error("{path}: no ModelServer document in the file")]
    Empty {
        /// The file.
        path: String,
    },
    /// The ModelServer could not be rendered.
    #[error("{path}: {source}")]
    Render {
        /// The file.
        path: String,
        /// Why.
        source: RenderError,
    },
    /// The output could not be serialized or written.
    #[error("writing the rendered objects: {0}")]
    Output(String),
}
