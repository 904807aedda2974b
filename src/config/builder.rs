//! `OpikConfigBuilder`: code over environment over config file over defaults.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reqwest::Url;

use super::error::{ConfigError, ValueSource};
use super::file::{self, FileValues};
use super::secret::ApiKey;
use super::{DEFAULT_PROJECT, DEFAULT_WORKSPACE, OPIK_CLOUD_URL, OpikConfig};

/// Builds an [`OpikConfig`]: values set here win over the environment, which wins over the
/// config file, which wins over the defaults.
///
/// Tests should not touch the process environment: pass one with
/// [`environment`](Self::environment).
///
/// ```
/// use tower_opik::OpikConfig;
/// let config = OpikConfig::builder()
///     .environment([("OPIK_PROJECT_NAME", "from-env"), ("OPIK_WORKSPACE", "team")])
///     .no_config_file()
///     .project_name("from-code")
///     .build()
///     .unwrap();
/// assert_eq!(config.project_name(), "from-code");
/// assert_eq!(config.workspace(), "team");
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct OpikConfigBuilder {
    url: Option<String>,
    api_key: Option<ApiKey>,
    workspace: Option<String>,
    project_name: Option<String>,
    track_disable: Option<bool>,
    check_tls_certificate: Option<bool>,
    sample_rate: Option<f64>,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    config_file: FileChoice,
    environment: EnvChoice,
}

#[derive(Clone, Debug, Default)]
enum FileChoice {
    /// `OPIK_CONFIG_PATH`, else `~/.opik.config`; a missing default file is fine.
    #[default]
    Default,
    Explicit(PathBuf),
    None,
}

#[derive(Clone, Debug, Default)]
enum EnvChoice {
    #[default]
    Process,
    Given(HashMap<String, String>),
}

impl std::fmt::Debug for OpikConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpikConfigBuilder")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("workspace", &self.workspace)
            .field("project_name", &self.project_name)
            .field("track_disable", &self.track_disable)
            .field("check_tls_certificate", &self.check_tls_certificate)
            .field("sample_rate", &self.sample_rate)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("config_file", &self.config_file)
            .finish_non_exhaustive()
    }
}

impl OpikConfigBuilder {
    /// The base URL (`OPIK_URL_OVERRIDE`), e.g. `http://localhost:5173/api/`.
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().url("http://localhost:5173/api/");
    /// ```
    pub fn url(mut self, url: impl AsRef<str>) -> Self {
        self.url = Some(url.as_ref().to_owned());
        self
    }

    /// The API key (`OPIK_API_KEY`).
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().api_key("sk-...");
    /// ```
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    /// The workspace (`OPIK_WORKSPACE`).
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().workspace("team");
    /// ```
    pub fn workspace(mut self, workspace: impl Into<String>) -> Self {
        self.workspace = Some(workspace.into());
        self
    }

    /// The project (`OPIK_PROJECT_NAME`). Every service of one trace should use the same.
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().project_name("checkout");
    /// ```
    pub fn project_name(mut self, project: impl Into<String>) -> Self {
        self.project_name = Some(project.into());
        self
    }

    /// The share of traces recorded, 0.0 to 1.0, over `OPIK_SAMPLE_RATE` and the config
    /// file's `[tower_opik]` `sample_rate` (see [`OpikConfig::sample_rate`]). A value outside is an error at
    /// [`build`](Self::build).
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::builder().sample_rate(0.1).no_config_file().build().unwrap();
    /// assert_eq!(config.sample_rate(), 0.1);
    /// assert!(tower_opik::OpikConfig::builder().sample_rate(1.5).build().is_err());
    /// ```
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = Some(rate);
        self
    }

    /// The spool directory, over `OPIK_SPOOL_DIR` and the config file's `[tower_opik]`
    /// `spool_dir` (see
    /// [`OpikConfig::spool_dir`]).
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::builder().spool_dir("/tmp/opik-spool").no_config_file().build().unwrap();
    /// assert!(config.spool_dir().is_some());
    /// ```
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// The spool's bound in bytes, over `OPIK_SPOOL_MAX_BYTES` and the config file's
    /// `[tower_opik]` `spool_max_bytes` (see [`OpikConfig::spool_max_bytes`]).
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::builder().spool_max_bytes(1 << 20).no_config_file().build().unwrap();
    /// assert_eq!(config.spool_max_bytes(), Some(1 << 20));
    /// ```
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.spool_max_bytes = Some(bytes);
        self
    }

    /// The kill switch (`OPIK_TRACK_DISABLE`).
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().track_disable(true);
    /// ```
    pub fn track_disable(mut self, disable: bool) -> Self {
        self.track_disable = Some(disable);
        self
    }

    /// Whether the built-in client checks Opik's TLS certificate, over
    /// `OPIK_CHECK_TLS_CERTIFICATE` and the config file (see
    /// [`OpikConfig::check_tls_certificate`]).
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().check_tls_certificate(false);
    /// ```
    pub fn check_tls_certificate(mut self, check: bool) -> Self {
        self.check_tls_certificate = Some(check);
        self
    }

    /// Reads this config file (it must exist) instead of `OPIK_CONFIG_PATH` /
    /// `~/.opik.config`.
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().config_file("/etc/opik.config");
    /// ```
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = FileChoice::Explicit(path.into());
        self
    }

    /// Reads no config file.
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().no_config_file();
    /// ```
    pub fn no_config_file(mut self) -> Self {
        self.config_file = FileChoice::None;
        self
    }

    /// Uses these variables instead of the process environment.
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().environment([("OPIK_WORKSPACE", "team")]);
    /// ```
    pub fn environment<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.environment = EnvChoice::Given(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Reads no environment variable.
    ///
    /// ```
    /// let b = tower_opik::OpikConfig::builder().ignore_environment();
    /// ```
    pub fn ignore_environment(self) -> Self {
        self.environment(std::iter::empty::<(String, String)>())
    }

    fn env(&self, name: &'static str) -> Option<(String, ValueSource)> {
        let value = match &self.environment {
            EnvChoice::Process => std::env::var(name).ok(),
            EnvChoice::Given(map) => map.get(name).cloned(),
        };
        value
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v, ValueSource::Env(name)))
    }

    fn file(&self) -> Result<Option<FileValues>, ConfigError> {
        match &self.config_file {
            FileChoice::None => Ok(None),
            FileChoice::Explicit(path) => file::read(path, true),
            FileChoice::Default => match self.env("OPIK_CONFIG_PATH") {
                Some((path, _)) => {
                    file::read(&expand_home(path.trim(), self.home().as_deref()), true)
                }
                None => match self.home() {
                    Some(home) => file::read(&home.join(".opik.config"), false),
                    None => Ok(None),
                },
            },
        }
    }

    fn home(&self) -> Option<PathBuf> {
        let home = match &self.environment {
            EnvChoice::Process => std::env::var_os("HOME").map(PathBuf::from),
            EnvChoice::Given(map) => map.get("HOME").map(PathBuf::from),
        };
        home.filter(|h| !h.as_os_str().is_empty())
    }

    /// Resolves every setting: builder, environment, config file, defaults.
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::builder().ignore_environment().no_config_file().build().unwrap();
    /// assert_eq!(config.url().as_str(), "https://www.comet.com/opik/api/");
    /// ```
    pub fn build(self) -> Result<OpikConfig, ConfigError> {
        let file = self.file()?;
        let pick = |code: &Option<String>, env: &'static str, key: &str| {
            code.clone()
                .map(|v| (v, ValueSource::Code))
                .or_else(|| self.env(env))
                .or_else(|| {
                    file.as_ref()
                        .and_then(|f| f.get(key))
                        .map(|(v, s)| (v.to_owned(), s))
                })
        };
        // tower-opik's own settings: the environment, then the file's `[tower_opik]`.
        let pick_ours = |env: &'static str, key: &str| {
            self.env(env).or_else(|| {
                file.as_ref()
                    .and_then(|f| f.get_ours(key))
                    .map(|(v, s)| (v.to_owned(), s))
            })
        };
        let api_key = self
            .api_key
            .clone()
            .or_else(|| pick(&None, "OPIK_API_KEY", "api_key").map(|(v, _)| ApiKey::new(v.trim())));
        let url = match pick(&self.url, "OPIK_URL_OVERRIDE", "url_override") {
            Some((url, source)) => parse_url(&url, source)?,
            None => match api_key.as_ref().map(ApiKey::embedded_base_url).transpose() {
                Err(reason) => return Err(ConfigError::ApiKey { reason }),
                Ok(Some(Some(base))) => {
                    let base = parse_url(&base, ValueSource::ApiKey)?;
                    base.join("opik/api/")
                        .map_err(|e| ConfigError::InvalidUrl {
                            source: ValueSource::ApiKey,
                            value: base.to_string(),
                            reason: e.to_string(),
                        })?
                }
                Ok(_) => parse_url(OPIK_CLOUD_URL, ValueSource::Code)?,
            },
        };
        let workspace = non_blank(
            pick(&self.workspace, "OPIK_WORKSPACE", "workspace"),
            "workspace",
        )?
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_owned());
        let project_name = non_blank(
            pick(&self.project_name, "OPIK_PROJECT_NAME", "project_name"),
            "project name",
        )?
        .unwrap_or_else(|| DEFAULT_PROJECT.to_owned());
        let track_disable = match self.track_disable {
            Some(b) => b,
            None => match pick(&None, "OPIK_TRACK_DISABLE", "track_disable") {
                Some((v, source)) => parse_bool(&v, source)?,
                None => false,
            },
        };
        let check_tls_certificate = match self.check_tls_certificate {
            Some(b) => b,
            None => match pick(&None, "OPIK_CHECK_TLS_CERTIFICATE", "check_tls_certificate") {
                Some((v, source)) => parse_bool(&v, source)?,
                None => true,
            },
        };
        let sample_rate = match self.sample_rate {
            Some(rate) => parse_rate(&rate.to_string(), ValueSource::Code)?,
            None => match pick_ours("OPIK_SAMPLE_RATE", "sample_rate") {
                Some((v, source)) => parse_rate(&v, source)?,
                None => 1.0,
            },
        };
        let spool_dir = match &self.spool_dir {
            Some(dir) => Some(dir.clone()),
            None => match pick_ours("OPIK_SPOOL_DIR", "spool_dir") {
                Some((dir, source)) if dir.trim().is_empty() => {
                    return Err(ConfigError::Blank {
                        field: "spool directory",
                        source,
                    });
                }
                // `~` is the user's home even with the environment ignored (a literal `~`
                // directory in the working directory helps nobody).
                Some((dir, _)) => {
                    let home = self
                        .home()
                        .or_else(|| std::env::var_os("HOME").map(PathBuf::from));
                    Some(expand_home(dir.trim(), home.as_deref()))
                }
                None => None,
            },
        };
        let spool_max_bytes = match self.spool_max_bytes {
            Some(bytes) => Some(bytes),
            None => match pick_ours("OPIK_SPOOL_MAX_BYTES", "spool_max_bytes") {
                Some((v, source)) => Some(parse_byte_size(&v, source)?),
                None => None,
            },
        };
        Ok(OpikConfig {
            url,
            api_key,
            workspace,
            project_name,
            track_disable,
            check_tls_certificate,
            sample_rate,
            spool_dir,
            spool_max_bytes,
        })
    }
}

fn non_blank(
    value: Option<(String, ValueSource)>,
    field: &'static str,
) -> Result<Option<String>, ConfigError> {
    match value {
        Some((v, source)) if v.trim().is_empty() => Err(ConfigError::Blank { field, source }),
        Some((v, _)) => Ok(Some(v.trim().to_owned())),
        None => Ok(None),
    }
}

/// An absolute `http(s)` URL with a host, normalised to end in `/`.
fn parse_url(text: &str, source: ValueSource) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        source: source.clone(),
        value: without_userinfo(text),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(text.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or a fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A share from 0.0 to 1.0 (`0` and `1` too); anything else, `NaN` included, is refused.
/// `text` with the user and password of its authority, if any, as `***`: an URL refused
/// may still carry them, and the error is logged.
fn without_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => text.to_owned(),
    }
}

fn parse_rate(text: &str, source: ValueSource) -> Result<f64, ConfigError> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(ConfigError::InvalidSampleRate {
            source,
            value: text.to_owned(),
        }),
    }
}

/// `1073741824`, `512 MiB`, `2GB`: the `bytesize` crate's forms.
fn parse_byte_size(text: &str, source: ValueSource) -> Result<u64, ConfigError> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| ConfigError::InvalidByteSize {
            source,
            value: text.to_owned(),
        })
}

fn parse_bool(text: &str, source: ValueSource) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "y" | "t" => Ok(true),
        "false" | "0" | "no" | "off" | "n" | "f" => Ok(false),
        _ => Err(ConfigError::InvalidBool {
            source,
            value: text.to_owned(),
        }),
    }
}

fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}
