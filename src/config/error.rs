//! Configuration errors: each names where the bad value came from.

use std::path::PathBuf;

/// Where a configuration value came from.
///
/// ```
/// use tower_opik::config::ValueSource;
/// assert_eq!(ValueSource::Env("OPIK_URL_OVERRIDE").to_string(), "environment variable OPIK_URL_OVERRIDE");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueSource {
    /// Set in code, through the builder.
    Code,
    /// An environment variable.
    Env(&'static str),
    /// A line of a config file.
    File {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// The attributes embedded in the API key.
    ApiKey,
}

impl std::fmt::Display for ValueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code => f.write_str("the builder"),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::ApiKey => f.write_str("the API key's embedded attributes"),
        }
    }
}

/// A configuration that cannot be used. Never contains the API key.
///
/// ```
/// let err = tower_opik::OpikConfig::builder()
///     .ignore_environment()
///     .no_config_file()
///     .url("ftp://example.com/")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("ftp://example.com/"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL that is not an absolute `http`/`https` URL with a host.
    InvalidUrl {
        /// Where it came from.
        source: ValueSource,
        /// The value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A boolean that is not one of true/false/1/0/yes/no/on/off.
    InvalidBool {
        /// Where it came from.
        source: ValueSource,
        /// The value.
        value: String,
    },
    /// A sample rate that is not a number from 0.0 to 1.0.
    InvalidSampleRate {
        /// Where it came from.
        source: ValueSource,
        /// The value.
        value: String,
    },
    /// A size that is not a number of bytes (`1073741824`, `512 MiB`, `2 GB`).
    InvalidByteSize {
        /// Where it came from.
        source: ValueSource,
        /// The value.
        value: String,
    },
    /// A blank value where one is required (project name, workspace).
    Blank {
        /// Which setting.
        field: &'static str,
        /// Where it came from.
        source: ValueSource,
    },
    /// The config file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The config file is not valid INI.
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The API key is malformed (its embedded attributes cannot be read).
    ApiKey {
        /// What is wrong (never the key).
        reason: &'static str,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUrl {
                source,
                value,
                reason,
            } => {
                write!(f, "invalid Opik URL {value:?} from {source}: {reason}")
            }
            Self::InvalidBool { source, value } => write!(
                f,
                "invalid boolean {value:?} from {source} (expected true/false, 1/0, yes/no, on/off)"
            ),
            Self::InvalidSampleRate { source, value } => write!(
                f,
                "invalid sample rate {value:?} from {source} (expected a number from 0.0 to 1.0)"
            ),
            Self::InvalidByteSize { source, value } => write!(
                f,
                "invalid size {value:?} from {source} (expected bytes, such as 1073741824 or \
                 512 MiB)"
            ),
            Self::Blank { field, source } => write!(f, "blank {field} from {source}"),
            Self::Io { path, error } => {
                write!(
                    f,
                    "cannot read the Opik config file {}: {error}",
                    path.display()
                )
            }
            Self::Syntax {
                path,
                line,
                message,
            } => {
                write!(f, "{}:{line}: {message}", path.display())
            }
            Self::ApiKey { reason } => write!(f, "malformed Opik API key: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}
