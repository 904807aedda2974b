//! Configuration, read the way the official Opik SDKs read it (the Python SDK's
//! `opik/config.py`): `OPIK_*`
//! environment variables and the INI file `~/.opik.config`, under a builder.
//!
//! Precedence: builder > environment > config file > defaults.

mod builder;
mod error;
mod file;
mod secret;

use reqwest::Url;

pub use builder::OpikConfigBuilder;
pub use error::{ConfigError, ValueSource};
pub use secret::ApiKey;

/// Parses the text of an `~/.opik.config` file as [`OpikConfig`] would (without applying
/// it). For the fuzz target and the tests only: not part of the API (hidden from the docs
/// and from `docs/public-api.txt`), it may change or go in any release.
#[doc(hidden)]
pub fn check_config_file(path: &str, text: &str) -> Result<(), ConfigError> {
    file::parse(text, std::path::Path::new(path)).map(|_| ())
}

/// Opik Cloud's API, the default URL (as in the Python SDK).
///
/// ```
/// assert_eq!(tower_opik::config::OPIK_CLOUD_URL, "https://www.comet.com/opik/api/");
/// ```
pub const OPIK_CLOUD_URL: &str = "https://www.comet.com/opik/api/";
/// The default workspace.
///
/// ```
/// assert_eq!(tower_opik::config::DEFAULT_WORKSPACE, "default");
/// ```
pub const DEFAULT_WORKSPACE: &str = "default";
/// The default project (also what Opik uses when none is sent).
///
/// ```
/// assert_eq!(tower_opik::config::DEFAULT_PROJECT, "Default Project");
/// ```
pub const DEFAULT_PROJECT: &str = "Default Project";

/// Where and as whom to send: URL, API key, workspace, project, and the kill switch.
///
/// ```
/// use tower_opik::OpikConfig;
/// let config = OpikConfig::builder()
///     .url("http://localhost:5173/api")
///     .project_name("my-service")
///     .ignore_environment()
///     .no_config_file()
///     .build()
///     .unwrap();
/// assert_eq!(config.url().as_str(), "http://localhost:5173/api/");
/// assert_eq!(config.endpoint("v1/private/spans/batch").as_str(),
///            "http://localhost:5173/api/v1/private/spans/batch");
/// assert_eq!(config.workspace(), "default");
/// ```
#[derive(Clone)]
pub struct OpikConfig {
    url: Url,
    api_key: Option<ApiKey>,
    workspace: String,
    project_name: String,
    track_disable: bool,
    check_tls_certificate: bool,
    sample_rate: f64,
    spool_dir: Option<std::path::PathBuf>,
    spool_max_bytes: Option<u64>,
}

/// `url` without the user and password it may carry (a reverse proxy's basic auth in
/// front of Opik): how every log line, error and `Debug` output of the crate shows it.
pub(crate) fn without_credentials(url: &Url) -> Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

impl std::fmt::Debug for OpikConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpikConfig")
            .field("url", &without_credentials(&self.url).as_str())
            .field("api_key", &self.api_key)
            .field("workspace", &self.workspace)
            .field("project_name", &self.project_name)
            .field("track_disable", &self.track_disable)
            .field("check_tls_certificate", &self.check_tls_certificate)
            .field("sample_rate", &self.sample_rate)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .finish()
    }
}

impl OpikConfig {
    /// A builder over the environment and the config file.
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().workspace("team");
    /// ```
    pub fn builder() -> OpikConfigBuilder {
        OpikConfigBuilder::default()
    }

    /// The configuration from the environment and the config file alone.
    ///
    /// ```no_run
    /// let config = tower_opik::OpikConfig::from_env()?;
    /// # Ok::<(), tower_opik::config::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// A configuration for a local Opik (or a [`LocalOpik`](crate::testing)) at `url`: no
    /// key, workspace `default`, project `Default Project`, reading neither the environment
    /// nor a file. An unusable URL falls back to `http://127.0.0.1/` (and a warning); use
    /// the builder to get an error instead.
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::local("http://127.0.0.1:5173/api/");
    /// assert!(config.api_key().is_none());
    /// ```
    pub fn local(url: &str) -> Self {
        match Self::builder()
            .url(url)
            .ignore_environment()
            .no_config_file()
            .build()
        {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!(target: "tower_opik", error = %e, "OpikConfig::local: using http://127.0.0.1/");
                Self {
                    url: Url::parse("http://127.0.0.1/").expect("static URL"),
                    api_key: None,
                    workspace: DEFAULT_WORKSPACE.to_owned(),
                    project_name: DEFAULT_PROJECT.to_owned(),
                    track_disable: false,
                    check_tls_certificate: true,
                    sample_rate: 1.0,
                    spool_dir: None,
                    spool_max_bytes: None,
                }
            }
        }
    }

    /// The base URL, always ending in `/`.
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::local("http://localhost:5173/api");
    /// assert_eq!(config.url().as_str(), "http://localhost:5173/api/");
    /// ```
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// An endpoint under the base URL (`v1/private/...`; a leading `/` is ignored).
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::local("https://www.comet.com/opik/api/");
    /// assert_eq!(config.endpoint("/v1/private/traces/batch").as_str(),
    ///            "https://www.comet.com/opik/api/v1/private/traces/batch");
    /// ```
    pub fn endpoint(&self, path: &str) -> Url {
        let path = path.trim_start_matches('/');
        self.url.join(path).unwrap_or_else(|_| self.url.clone())
    }

    /// The API key, if any.
    ///
    /// ```
    /// assert!(tower_opik::OpikConfig::local("http://localhost/").api_key().is_none());
    /// ```
    pub fn api_key(&self) -> Option<&ApiKey> {
        self.api_key.as_ref()
    }

    /// The workspace (`default` unless set).
    ///
    /// ```
    /// assert_eq!(tower_opik::OpikConfig::local("http://localhost/").workspace(), "default");
    /// ```
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// The project (`Default Project` unless set).
    ///
    /// ```
    /// assert_eq!(tower_opik::OpikConfig::local("http://localhost/").project_name(), "Default Project");
    /// ```
    pub fn project_name(&self) -> &str {
        &self.project_name
    }

    /// The kill switch: when `true`, nothing is traced or sent.
    ///
    /// ```
    /// assert!(!tower_opik::OpikConfig::local("http://localhost/").track_disable());
    /// ```
    pub fn track_disable(&self) -> bool {
        self.track_disable
    }

    /// Whether the built-in client checks Opik's TLS certificate (`true`, the default).
    /// `false` comes from the builder, `OPIK_CHECK_TLS_CERTIFICATE` or the config file's
    /// `[opik]` `check_tls_certificate`, the Opik Python SDK's setting of the same name
    /// (its `OpikConfig`, which hands it to httpx as `verify`). For a self-signed
    /// certificate prefer trusting it over turning checks off: the built-in client reads
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` on Linux, as the Python SDK does. With `false` the
    /// handshake still checks that the server holds the certificate's key, but not who
    /// issued it nor the host name; the store logs a warning when it is built. It does not
    /// apply to a `reqwest::Client` handed in (`OpikRestExporter::with_client`).
    ///
    /// ```
    /// assert!(tower_opik::OpikConfig::local("https://opik.internal/api/").check_tls_certificate());
    /// let config = tower_opik::OpikConfig::builder()
    ///     .environment([("OPIK_CHECK_TLS_CERTIFICATE", "false")])
    ///     .no_config_file()
    ///     .build()
    ///     .unwrap();
    /// assert!(!config.check_tls_certificate());
    /// ```
    pub fn check_tls_certificate(&self) -> bool {
        self.check_tls_certificate
    }

    /// The share of traces recorded, 0.0 (none) to 1.0 (all, the default): from the
    /// builder, `OPIK_SAMPLE_RATE`, or the config file's `[tower_opik]` `sample_rate`. The
    /// decision is a function of the trace id (see [`SpanStore`](crate::SpanStore)'s sampling), so every
    /// service with the same rate keeps the same traces.
    ///
    /// ```
    /// assert_eq!(tower_opik::OpikConfig::local("http://localhost/").sample_rate(), 1.0);
    /// ```
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// The directory batches are spooled to while Opik cannot take them (see
    /// [`SpanStoreBuilder::spool_dir`](crate::store::SpanStoreBuilder::spool_dir)): from the
    /// builder, `OPIK_SPOOL_DIR`, or the config file's `[tower_opik]` `spool_dir` (a leading
    /// `~/` is the home directory, in the variable and the file alike). `None` (the
    /// default): no spool.
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::builder()
    ///     .environment([("OPIK_SPOOL_DIR", "/var/spool/opik")])
    ///     .no_config_file()
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.spool_dir(), Some(std::path::Path::new("/var/spool/opik")));
    /// ```
    pub fn spool_dir(&self) -> Option<&std::path::Path> {
        self.spool_dir.as_deref()
    }

    /// The spool's bound in bytes, when set: from the builder, `OPIK_SPOOL_MAX_BYTES` or the
    /// config file's `[tower_opik]` `spool_max_bytes` (`1073741824`, `512 MiB`, `2GB`; parsed
    /// by the `bytesize` crate). `None`: the store's default, 1 GiB.
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::builder()
    ///     .environment([("OPIK_SPOOL_MAX_BYTES", "512 MiB")])
    ///     .no_config_file()
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.spool_max_bytes(), Some(512 << 20));
    /// ```
    pub fn spool_max_bytes(&self) -> Option<u64> {
        self.spool_max_bytes
    }

    /// Whether the URL is Opik Cloud's.
    ///
    /// ```
    /// assert!(!tower_opik::OpikConfig::local("http://localhost/").is_cloud());
    /// ```
    pub fn is_cloud(&self) -> bool {
        self.url.host_str() == Some("www.comet.com")
    }
}
