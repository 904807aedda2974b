//! Configuration: precedence (code > environment > file > defaults), the config file, and
//! every error a user can make, each naming where the bad value came from.

mod common;

use std::path::PathBuf;

use tower_opik::OpikConfig;
use tower_opik::config::{ConfigError, ValueSource};

/// A config file in a fresh temporary directory, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tower-opik-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".opik.config");
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const FILE: &str = "[opik]\nurl_override = http://file.example/api/\napi_key = file-key\nworkspace = file-ws\nproject_name = file-project\ntrack_disable = false\n";

fn env_all() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OPIK_URL_OVERRIDE", "http://env.example/api/"),
        ("OPIK_API_KEY", "env-key"),
        ("OPIK_WORKSPACE", "env-ws"),
        ("OPIK_PROJECT_NAME", "env-project"),
        ("OPIK_TRACK_DISABLE", "true"),
    ]
}

fn summary(c: &OpikConfig) -> [String; 5] {
    [
        c.url().to_string(),
        c.api_key()
            .map(|k| k.expose_secret().to_owned())
            .unwrap_or_default(),
        c.workspace().to_owned(),
        c.project_name().to_owned(),
        c.track_disable().to_string(),
    ]
}

#[test]
fn each_level_wins_over_the_ones_below() {
    let file = TempFile::new(FILE);
    // defaults
    let c = OpikConfig::builder()
        .ignore_environment()
        .no_config_file()
        .build()
        .unwrap();
    assert_eq!(
        summary(&c),
        [
            "https://www.comet.com/opik/api/",
            "",
            "default",
            "Default Project",
            "false"
        ]
    );
    // file over defaults
    let c = OpikConfig::builder()
        .ignore_environment()
        .config_file(&file.path)
        .build()
        .unwrap();
    assert_eq!(
        summary(&c),
        [
            "http://file.example/api/",
            "file-key",
            "file-ws",
            "file-project",
            "false"
        ]
    );
    // environment over file
    let c = OpikConfig::builder()
        .environment(env_all())
        .config_file(&file.path)
        .build()
        .unwrap();
    assert_eq!(
        summary(&c),
        [
            "http://env.example/api/",
            "env-key",
            "env-ws",
            "env-project",
            "true"
        ]
    );
    // code over environment
    let c = OpikConfig::builder()
        .environment(env_all())
        .config_file(&file.path)
        .url("http://code.example/api")
        .api_key("code-key")
        .workspace("code-ws")
        .project_name("code-project")
        .track_disable(false)
        .build()
        .unwrap();
    assert_eq!(
        summary(&c),
        [
            "http://code.example/api/",
            "code-key",
            "code-ws",
            "code-project",
            "false"
        ]
    );
}

#[test]
fn each_field_falls_through_on_its_own() {
    let file = TempFile::new(FILE);
    let c = OpikConfig::builder()
        .environment([("OPIK_WORKSPACE", "env-ws"), ("OPIK_PROJECT_NAME", "")])
        .config_file(&file.path)
        .api_key("code-key")
        .build()
        .unwrap();
    // url from the file, key from code, workspace from env, project from the file (an empty
    // environment value counts as unset)
    assert_eq!(
        summary(&c),
        [
            "http://file.example/api/",
            "code-key",
            "env-ws",
            "file-project",
            "false"
        ]
    );
}

#[test]
fn the_default_file_comes_from_opik_config_path_or_home() {
    let file = TempFile::new(FILE);
    let c = OpikConfig::builder()
        .environment([("OPIK_CONFIG_PATH", file.path.to_str().unwrap())])
        .build()
        .unwrap();
    assert_eq!(c.workspace(), "file-ws");
    // `~` expands to HOME
    let c = OpikConfig::builder()
        .environment([
            ("HOME", file.dir.to_str().unwrap()),
            ("OPIK_CONFIG_PATH", "~/.opik.config"),
        ])
        .build()
        .unwrap();
    assert_eq!(c.workspace(), "file-ws");
    // ~/.opik.config itself
    let c = OpikConfig::builder()
        .environment([("HOME", file.dir.to_str().unwrap())])
        .build()
        .unwrap();
    assert_eq!(c.project_name(), "file-project");
    // A missing default file is fine...
    let c = OpikConfig::builder()
        .environment([("HOME", "/nonexistent/tower-opik")])
        .build()
        .unwrap();
    assert_eq!(c.workspace(), "default");
    // ...a missing file that was asked for is not.
    let err = OpikConfig::builder()
        .environment([("OPIK_CONFIG_PATH", "/nonexistent/opik.config")])
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/opik.config"),
        "{err}"
    );
    let err = OpikConfig::builder()
        .ignore_environment()
        .config_file("/nonexistent/x")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x"), "{err}");
}

#[test]
fn malformed_config_files_name_the_file_and_the_line() {
    let cases = [
        ("url_override = http://a/\n", 1, "before any [section]"),
        ("[opik]\n# fine\nworkspace\n", 3, "key = value"),
        ("[opik]\nworkspace = a\n\n[opik\n", 4, "closing"),
        ("[opik]\nworkspace = a\nWorkspace = b\n", 3, "twice"),
    ];
    for (text, line, what) in cases {
        let file = TempFile::new(text);
        let err = OpikConfig::builder()
            .ignore_environment()
            .config_file(&file.path)
            .build()
            .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}:{line}:", file.path.display())),
            "{text:?}: {shown}"
        );
        assert!(shown.contains(what), "{text:?}: {shown}");
    }
    // Not UTF-8.
    let file = TempFile::new("");
    std::fs::write(&file.path, b"[opik]\nworkspace = \xff\n").unwrap();
    let err = OpikConfig::builder()
        .ignore_environment()
        .config_file(&file.path)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
    // A bad value in the file names its line too.
    let file = TempFile::new("[opik]\n\nurl_override = ftp://x/\n");
    let err = OpikConfig::builder()
        .ignore_environment()
        .config_file(&file.path)
        .build()
        .unwrap_err();
    match &err {
        ConfigError::InvalidUrl {
            source: ValueSource::File { line, .. },
            ..
        } => assert_eq!(*line, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn urls_are_checked_and_normalised() {
    let build = |url: &str| {
        OpikConfig::builder()
            .ignore_environment()
            .no_config_file()
            .url(url)
            .build()
    };
    for (given, base) in [
        ("http://localhost:5173/api", "http://localhost:5173/api/"),
        ("http://localhost:5173/api/", "http://localhost:5173/api/"),
        (
            "https://www.comet.com/opik/api",
            "https://www.comet.com/opik/api/",
        ),
        ("  http://127.0.0.1:8080  ", "http://127.0.0.1:8080/"),
    ] {
        let c = build(given).unwrap();
        assert_eq!(c.url().as_str(), base);
        assert_eq!(
            c.endpoint("v1/private/spans/batch").as_str(),
            format!("{base}v1/private/spans/batch")
        );
    }
    for bad in [
        "not a url",
        "ftp://example.com/",
        "http://",
        "localhost:5173",
        "http://h/?q=1",
        "file:///etc",
    ] {
        let err = build(bad).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::InvalidUrl {
                    source: ValueSource::Code,
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains(bad.trim()), "{bad}: {err}");
    }
    let err = OpikConfig::builder()
        .environment([("OPIK_URL_OVERRIDE", "gopher://x")])
        .no_config_file()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("OPIK_URL_OVERRIDE"), "{err}");
}

#[test]
fn booleans_and_blanks() {
    for (value, expected) in [
        ("true", true),
        ("1", true),
        ("YES", true),
        ("on", true),
        ("false", false),
        ("0", false),
        ("No", false),
        ("off", false),
    ] {
        let c = OpikConfig::builder()
            .environment([("OPIK_TRACK_DISABLE", value)])
            .no_config_file()
            .build()
            .unwrap();
        assert_eq!(c.track_disable(), expected, "{value}");
    }
    let err = OpikConfig::builder()
        .environment([("OPIK_TRACK_DISABLE", "maybe")])
        .no_config_file()
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("OPIK_TRACK_DISABLE") && err.to_string().contains("maybe"),
        "{err}"
    );
    let err = OpikConfig::builder()
        .ignore_environment()
        .no_config_file()
        .project_name("  ")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Blank {
                field: "project name",
                ..
            }
        ),
        "{err:?}"
    );
    let err = OpikConfig::builder()
        .ignore_environment()
        .no_config_file()
        .workspace("")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Blank {
                field: "workspace",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_cloud_key_with_an_embedded_url_sets_the_url_unless_one_is_given() {
    // {"baseUrl":"https://eu.example.com/"}
    let key = "abcdefghijklmnopqrstuvwxy*eyJiYXNlVXJsIjoiaHR0cHM6Ly9ldS5leGFtcGxlLmNvbS8ifQ==";
    let c = OpikConfig::builder()
        .ignore_environment()
        .no_config_file()
        .api_key(key)
        .build()
        .unwrap();
    assert_eq!(c.url().as_str(), "https://eu.example.com/opik/api/");
    assert_eq!(
        c.api_key().unwrap().expose_secret(),
        key,
        "the raw key is what is sent"
    );
    let c = OpikConfig::builder()
        .environment([("OPIK_URL_OVERRIDE", "http://localhost:5173/api/")])
        .no_config_file()
        .api_key(key)
        .build()
        .unwrap();
    assert_eq!(c.url().as_str(), "http://localhost:5173/api/");
    let err = OpikConfig::builder()
        .ignore_environment()
        .no_config_file()
        .api_key("a*!!notbase64!!")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::ApiKey { .. }), "{err:?}");
    assert!(!format!("{err}{err:?}").contains("notbase64"));
}

#[test]
fn the_api_key_never_shows() {
    let canary = "sk-CANARY-9f8e7d";
    let file = TempFile::new(&format!(
        "[opik]\napi_key = {canary}\nurl_override = nope\n"
    ));
    let c = OpikConfig::builder()
        .ignore_environment()
        .no_config_file()
        .api_key(canary)
        .build()
        .unwrap();
    let err = OpikConfig::builder()
        .ignore_environment()
        .config_file(&file.path)
        .build()
        .unwrap_err();
    let builder = OpikConfig::builder().api_key(canary);
    let shown = format!(
        "{c:?} {:?} {} {err} {err:?} {builder:?}",
        c.api_key().unwrap(),
        c.api_key().unwrap()
    );
    assert!(!shown.contains("CANARY"), "{shown}");
}

/// tower-opik's own settings (`sample_rate`, `spool_dir`, `spool_max_bytes`) live in a
/// `[tower_opik]` section: in `[opik]` they make the official Python SDK refuse the whole
/// file, which a test here shows with the SDK itself.
#[test]
fn tower_opik_settings_live_in_their_own_section_which_the_python_sdk_accepts() {
    let good = TempFile::new(
        "[opik]\nworkspace = team\n[tower_opik]\nsample_rate = 0.25\nspool_dir = ~/spool\n\
         spool_max_bytes = 2 GiB\n",
    );
    let config = OpikConfig::builder()
        .config_file(&good.path)
        .environment([("HOME", "/home/me")])
        .build()
        .unwrap();
    assert_eq!(config.workspace(), "team");
    assert_eq!(config.sample_rate(), 0.25);
    assert_eq!(
        config.spool_dir(),
        Some(std::path::Path::new("/home/me/spool"))
    );
    assert_eq!(config.spool_max_bytes(), Some(2 << 30));
    for (text, line) in [
        ("[opik]\nworkspace = w\nsample_rate = 0.5\n", 3),
        ("[opik]\nSPOOL_DIR = /x\n", 2),
        ("[DEFAULT]\nspool_max_bytes = 1\n[opik]\n", 2),
        ("[opik]\nworkspace = w\n[tower_opik]\nspool_dri = /x\n", 4),
    ] {
        let bad = TempFile::new(text);
        let err = OpikConfig::builder()
            .config_file(&bad.path)
            .ignore_environment()
            .build()
            .unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, ConfigError::Syntax { line: l, .. } if l == line)
                && message.contains("[tower_opik]")
                && (message.contains("Python SDK refuse") || message.contains("unknown key")),
            "{text:?}: {message}"
        );
    }

    // The official SDK reads the good file, and refuses a key of ours in `[opik]`.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let python = common::python::python_sdk(&target)
        .unwrap_or_else(|e| panic!("this test needs the official SDK: {e}"));
    let sdk_reads = |path: &std::path::Path| {
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import opik.config as c; print(c.OpikConfig().workspace)",
            ])
            .env("OPIK_CONFIG_PATH", path)
            .env_remove("OPIK_WORKSPACE")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    assert_eq!(sdk_reads(&good.path), (true, "team".to_owned()));
    let ours_in_opik = TempFile::new("[opik]\nworkspace = w\nsample_rate = 0.5\n");
    let (ok, output) = sdk_reads(&ours_in_opik.path);
    assert!(!ok && output.contains("sample_rate"), "{output}");
}

/// `check_tls_certificate`, the Python SDK's setting: on by default; off from the
/// builder, `OPIK_CHECK_TLS_CERTIFICATE` or the file's `[opik]` section, in that order; a
/// value that is not a boolean is an error naming where it came from.
#[test]
fn check_tls_certificate_comes_from_the_builder_the_environment_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("opik.config");
    std::fs::write(&file, "[opik]\ncheck_tls_certificate = false\n").unwrap();
    let from = |env: &[(&'static str, &'static str)], file_too: bool, code: Option<bool>| {
        let mut b = OpikConfig::builder().environment(env.iter().copied());
        b = if file_too {
            b.config_file(&file)
        } else {
            b.no_config_file()
        };
        if let Some(check) = code {
            b = b.check_tls_certificate(check);
        }
        b.build()
    };
    assert!(from(&[], false, None).unwrap().check_tls_certificate());
    assert!(!from(&[], true, None).unwrap().check_tls_certificate());
    let env = [("OPIK_CHECK_TLS_CERTIFICATE", "TRUE")];
    assert!(from(&env, true, None).unwrap().check_tls_certificate());
    assert!(
        !from(&env, true, Some(false))
            .unwrap()
            .check_tls_certificate()
    );
    let c = from(&[("OPIK_CHECK_TLS_CERTIFICATE", "0")], false, None).unwrap();
    assert!(!c.check_tls_certificate());
    assert!(format!("{c:?}").contains("check_tls_certificate: false"));
    let err = from(&[("OPIK_CHECK_TLS_CERTIFICATE", "sometimes")], false, None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("OPIK_CHECK_TLS_CERTIFICATE") && text.contains("sometimes"),
        "{text}"
    );
}

/// A URL with a user and password (basic auth of a reverse proxy in front of Opik): they
/// are used, and shown nowhere: not in `Debug` of the config or the exporter, not in the
/// error for a URL refused.
#[test]
fn a_password_in_the_url_never_shows() {
    let config = OpikConfig::builder()
        .url("https://user:secret@opik.example/api/")
        .ignore_environment()
        .no_config_file()
        .build()
        .unwrap();
    assert_eq!(config.url().password(), Some("secret"));
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("secret") && shown.contains("opik.example"),
        "{shown}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let exporter = tower_opik::store::OpikRestExporter::new(&config).unwrap();
    let shown = format!("{exporter:?}");
    assert!(
        !shown.contains("secret") && shown.contains("opik.example"),
        "{shown}"
    );
    for bad in [
        "ftp://user:secret@opik.example/api/",
        "https://user:secret@opik.example/api/?q=1",
    ] {
        let err = OpikConfig::builder()
            .url(bad)
            .ignore_environment()
            .no_config_file()
            .build()
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("secret") && shown.contains("***@opik.example"),
            "{shown}"
        );
    }
}
