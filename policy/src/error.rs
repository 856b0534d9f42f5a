use std::path::PathBuf;

/// Why a policy could not be loaded or rendered. Every variant names the file and, where
/// there is one, the field at fault, because users fix YAML by reading these messages.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{origin}: no DatabasePolicy found")]
    NoPolicy { origin: String },
    #[error("{origin}: document {index}: {message}")]
    Parse {
        origin: String,
        index: usize,
        message: String,
    },
    #[error("{origin}: {kind} {name}: {field}: {message}")]
    Invalid {
        origin: String,
        kind: String,
        name: String,
        field: String,
        message: String,
    },
    #[error("{origin}: duplicate {kind} {namespace}/{name}")]
    Duplicate {
        origin: String,
        kind: String,
        namespace: String,
        name: String,
    },
}
