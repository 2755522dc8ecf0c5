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
    #[error("reading {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The manifest is not a valid ModelServer.
    #[error("{path}: {cause}")]
    Load {
        /// The file.
        path: String,
        /// What is wrong with it.
        cause: modelserver_crds::load::LoadError,
    },
    /// The file holds no ModelServer.
    #[error("{path}: no ModelServer document in the file")]
    Empty {
        /// The file.
        path: String,
    },
    /// The ModelServer could not be rendered.
    #[error("{path}: {cause}")]
    Render {
        /// The file.
        path: String,
        /// Why.
        cause: RenderError,
    },
    /// The output could not be serialized or written.
    #[error("writing the rendered objects: {0}")]
    Output(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_printed_by_the_message_and_not_returned_again() {
        use std::error::Error as _;
        let error = CliError::Read {
            path: "x.yaml".into(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(error.to_string(), "reading x.yaml: no such file");
        assert!(error.source().is_none());
        let error = CliError::Render {
            path: "x.yaml".into(),
            cause: RenderError::MissingName,
        };
        assert!(error.to_string().ends_with("has no metadata.name"));
        assert!(error.source().is_none());
    }
}
