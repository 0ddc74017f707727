//! Config errors: [`FieldError`] from the compile step (a field path and a problem), and
//! [`ConfigError`], what `keygate check` and a reload print (`file:line[:col]: path: problem`).
//! No message ever contains a secret value.

/// A config that could not be loaded. `Display` is `file:line:col: field.path: problem`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file.
        file: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// YAML syntax, unknown field, wrong type or unset env var.
    #[error("{file}:{line}:{column}: {path}: {message}")]
    Parse {
        /// The config file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted field path, e.g. `routes[2].auth`.
        path: String,
        /// What is wrong (never a secret value).
        message: String,
    },
    /// A semantic problem found while compiling (bad PEM, overlapping routes, ...).
    #[error("{file}:{line}: {path}: {message}")]
    Invalid {
        /// The config file.
        file: String,
        /// 1-based line of the field.
        line: usize,
        /// Dotted field path.
        path: String,
        /// What is wrong (never a secret value).
        message: String,
    },
}

/// A semantic error found by the compile step, before it is given a file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted field path, e.g. `authenticators.knock_user.keys[0].pem_file`.
    pub path: String,
    /// What is wrong; never contains a secret value.
    pub message: String,
}

impl FieldError {
    /// An error at field `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
