//! The official Python SDK, for the interop tests and the peer benchmark (which includes this
//! file with `#[path]`): a virtualenv made once under the target directory. Test set-up, not
//! the crate's API: it runs `pip install`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The version of the official `opik` package the tests and benches run against.
pub const OPIK_PYTHON_SDK_VERSION: &str = "2.2.122";

/// The python of a virtualenv with the official `opik` package
/// ([`OPIK_PYTHON_SDK_VERSION`]), made on first use under `target_dir` (the cargo target
/// directory) as `python-opik-<version>`, with `python3 -m venv` and pip. Later calls reuse
/// it. Needs Python 3 with `venv` and the package index.
pub fn python_sdk(target_dir: &Path) -> std::io::Result<PathBuf> {
    let venv = target_dir.join(format!("python-opik-{OPIK_PYTHON_SDK_VERSION}"));
    let python = venv.join("bin").join("python");
    let marker = venv.join(".installed");
    if marker.exists() {
        return Ok(python);
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (Python 3 with venv is needed)",
    )?;
    pip_install(&python, &format!("opik=={OPIK_PYTHON_SDK_VERSION}"))?;
    std::fs::write(&marker, OPIK_PYTHON_SDK_VERSION)?;
    Ok(python)
}

/// The version of `opentelemetry-sdk` that [`python_sdk_with_otel`] adds (`opik` itself does
/// not depend on OpenTelemetry; its `opik.integrations.otel` needs it).
pub const OPENTELEMETRY_PYTHON_SDK_VERSION: &str = "1.39.1";

/// The python of [`python_sdk`]'s virtualenv with `opentelemetry-sdk`
/// ([`OPENTELEMETRY_PYTHON_SDK_VERSION`]) installed too, for running the official
/// `opik.integrations.otel.OpikSpanProcessor`. Installs it with pip on first use (a marker
/// file `.installed-otel` in the virtualenv records it); later calls only check the marker.
pub fn python_sdk_with_otel(target_dir: &Path) -> std::io::Result<PathBuf> {
    let python = python_sdk(target_dir)?;
    let venv = target_dir.join(format!("python-opik-{OPIK_PYTHON_SDK_VERSION}"));
    let marker = venv.join(".installed-otel");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(OPENTELEMETRY_PYTHON_SDK_VERSION) {
        return Ok(python);
    }
    pip_install(
        &python,
        &format!("opentelemetry-sdk=={OPENTELEMETRY_PYTHON_SDK_VERSION}"),
    )?;
    std::fs::write(&marker, OPENTELEMETRY_PYTHON_SDK_VERSION)?;
    Ok(python)
}

/// Runs `cmd`, an error naming `what` unless it succeeds.
fn run(cmd: &mut Command, what: &str) -> std::io::Result<()> {
    let status = cmd
        .status()
        .map_err(|e| std::io::Error::new(e.kind(), format!("{what}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("{what} failed ({status})")))
    }
}

/// `pip install --quiet <spec>` with the virtualenv's `python`.
fn pip_install(python: &Path, spec: &str) -> std::io::Result<()> {
    run(
        Command::new(python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            spec,
        ]),
        &format!("pip install {spec}"),
    )
}
