//! Errors that point at the operator's file: `FILE:LINE:COL: KEY: message`.

use std::fmt;
use std::path::PathBuf;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Where errors about keys that were not written in the file (defaulted) point.
    pub const START: Location = Location { line: 1, column: 1 };
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in a configuration file.
///
/// Displays as `FILE:LINE:COL: KEY: message`, or `FILE:LINE:COL: message` when no key applies
/// (a YAML syntax error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the operator named it.
    pub file: String,
    pub location: Location,
    /// The dotted key at fault, such as `p2p.port` or `monitoring.metrics[1].type`; empty for
    /// syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.file, self.location)?;
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one pass, in file order. Displays one error per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Environment variables referenced as `${NAME}` (no default) that are not set.
/// Sorted and de-duplicated; displays as `Missing environment variables: A, B`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingEnvVars(pub Vec<String>);

impl fmt::Display for MissingEnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Missing environment variables: {}", self.0.join(", "))
    }
}

impl std::error::Error for MissingEnvVars {}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read configuration file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `${VAR}` references to unset variables. Reported alone, before any other problem, since
    /// other errors may only be consequences of the missing values; the CLI prints this line
    /// as is and exits non-zero.
    #[error(transparent)]
    MissingEnv(MissingEnvVars),
    /// Syntax, type, unknown-key and validation errors, all of them.
    #[error(transparent)]
    Invalid(ConfigErrors),
}

/// A problem in a dotenv file: `FILE:LINE: message`.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
}
