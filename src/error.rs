//! The crate's error type.

use crate::config::ConfigError;

/// What can go wrong when setting tower-opik up. Nothing on the request path returns an
/// error: tracing problems are counted and logged, never passed to the caller.
///
/// ```
/// let err = tower_opik::Error::NoRuntime;
/// assert!(err.to_string().contains("tokio runtime"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The span store was built outside a tokio runtime.
    NoRuntime,
    /// The API key cannot be sent as an HTTP header value.
    InvalidApiKey,
    /// The workspace cannot be sent as an HTTP header value.
    InvalidWorkspace,
    /// An explicitly given project name is blank (Opik answers 422).
    BlankProjectName,
    /// The HTTPS client could not be set up.
    Tls(String),
    /// The proxy that `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` names for Opik's endpoint
    /// (and `NO_PROXY` does not exempt) cannot be used by the built-in client: its scheme
    /// is not `http://`, `socks5://` or `socks5h://`, or the value is not a URL. The
    /// message names the variable or the proxy's scheme, host and port, never its
    /// user-info.
    Proxy(String),
    /// The spool directory ([`SpanStoreBuilder::spool_dir`](crate::store::SpanStoreBuilder::spool_dir),
    /// `OPIK_SPOOL_DIR`) cannot be created, read or locked; `source` says why (kind
    /// `ResourceBusy`: another store, in this process or another, uses it).
    Spool {
        /// The directory.
        dir: std::path::PathBuf,
        /// What the file system answered.
        source: std::io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => write!(f, "invalid Opik configuration: {e}"),
            Self::NoRuntime => f.write_str(
                "the Opik span store must be built inside a tokio runtime (it spawns its export task there)",
            ),
            Self::InvalidApiKey => f.write_str("the Opik API key is not a valid HTTP header value"),
            Self::InvalidWorkspace => {
                f.write_str("the Opik workspace is not a valid HTTP header value")
            }
            Self::BlankProjectName => f.write_str("the Opik project name is blank"),
            Self::Tls(e) => write!(f, "could not set up the HTTPS client: {e}"),
            Self::Proxy(e) => write!(f, "cannot reach Opik through its proxy: {e}"),
            Self::Spool { dir, source } => {
                write!(f, "cannot use the Opik spool directory {}: {source}", dir.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Spool { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}
