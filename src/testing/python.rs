//! The official Python SDK, for interop tests and the peer benchmark: a virtualenv made once
//! under the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The version of the official `opik` package the tests and benches run against.
///
/// ```
/// assert!(tower_opik::testing::OPIK_PYTHON_SDK_VERSION.starts_with('2'));
/// ```
pub const OPIK_PYTHON_SDK_VERSION: &str = "2.2.122";

/// The python of a virtualenv with the official `opik` package
/// ([`OPIK_PYTHON_SDK_VERSION`]), made on first use under `target_dir` (the cargo target
/// directory) as `python-opik-<version>`, with `python3 -m venv` and pip. Later calls reuse
/// it. Needs Python 3 with `venv` and the package index.
///
/// ```no_run
/// let python = tower_opik::testing::python_sdk(std::path::Path::new("target"))?;
/// std::process::Command::new(python).args(["-c", "import opik"]).status()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn python_sdk(target_dir: &Path) -> std::io::Result<PathBuf> {
    let venv = target_dir.join(format!("python-opik-{OPIK_PYTHON_SDK_VERSION}"));
    let python = venv.join("bin").join("python");
    let marker = venv.join(".installed");
    if marker.exists() {
        return Ok(python);
    }
    let run = |cmd: &mut Command, what: &str| -> std::io::Result<()> {
        let status = cmd
            .status()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{what}: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("{what} failed ({status})")))
        }
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (Python 3 with venv is needed)",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("opik=={OPIK_PYTHON_SDK_VERSION}")),
        &format!("pip install opik=={OPIK_PYTHON_SDK_VERSION}"),
    )?;
    std::fs::write(&marker, OPIK_PYTHON_SDK_VERSION)?;
    Ok(python)
}
