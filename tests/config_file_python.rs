//! `~/.opik.config` is read exactly as the official Python SDK reads it: a differential test
//! of our reader against CPython's own `configparser`, configured as the SDK configures it
//! (`configparser.ConfigParser(interpolation=None)` then `config.read(path)`, in
//! `opik/config.py`, `IniConfigSettingsSource._read_file`, SDK 2.2.122).
//!
//! A few hundred generated files (seeded, so every run reads the same ones) are written to a
//! temporary directory and read by ONE `python3` process, which prints, for each, the `[opik]`
//! section's key → value map, or the first line Python rejects; our reader must give the same
//! map, or an error naming the same line. It needs `python3` on PATH (CI installs Python 3)
//! and fails, not skips, without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

/// The reader's `[opik]` values are crate-private: its source is compiled into this test too
/// (`super::error`, the only thing it imports, is this shim).
mod error {
    pub(crate) use tower_opik::config::{ConfigError, ValueSource};
}
#[allow(dead_code)] // `[tower_opik]` values are compared by tests/config.rs
#[path = "../src/config/file.rs"]
mod file;

use error::ConfigError;

/// Reads each file named in the JSON list `argv[1]` as the Opik SDK does. For a file Python
/// rejects, the first rejected line is the shortest prefix of its lines that is rejected
/// (configparser reads line by line, so a prefix fails exactly when an error is in it).
const PYTHON: &str = r#"
import configparser, json, sys

def sdk_read(path):
    # opik/config.py, IniConfigSettingsSource._read_file (SDK 2.2.122):
    config = configparser.ConfigParser(interpolation=None)
    config.read(path)
    config_values = {
        section: dict(config.items(section)) for section in config.sections()
    }
    return config_values.get("opik", {})

def first_bad_line(path):
    with open(path) as f:  # as ConfigParser.read opens it: universal newlines
        lines = f.readlines()
    for n in range(1, len(lines) + 1):
        try:
            configparser.ConfigParser(interpolation=None).read_file(lines[:n], path)
        except Exception:
            return n
    return None

# tower-opik's own keys: the SDK's OpikConfig (pydantic, extra inputs forbidden) refuses
# them in [opik] (where [DEFAULT]'s keys land too), so the reader refuses them there, at
# their line, unless configparser fails on an earlier line.
OURS = {"sample_rate", "spool_dir", "spool_max_bytes"}

def misplaced_line(path):
    with open(path) as f:
        lines = f.readlines()
    for n in range(1, len(lines) + 1):
        config = configparser.ConfigParser(interpolation=None)
        try:
            config.read_file(lines[:n], path)
        except Exception:
            return None
        raw = set(config._sections.get("opik", {})) | set(config._defaults)
        if raw & OURS:
            return n
    return None

out = []
for path in json.load(open(sys.argv[1])):
    misplaced = misplaced_line(path)
    if misplaced is not None:
        out.append({"error": "a tower-opik key in [opik] or [DEFAULT]", "line": misplaced})
        continue
    try:
        out.append({"ok": sdk_read(path)})
    except Exception as e:
        out.append({"error": type(e).__name__ + ": " + str(e), "line": first_bad_line(path)})
print(json.dumps({"version": sys.version, "results": out}))
"#;

/// What one reader made of one file.
#[derive(Debug, PartialEq)]
enum Outcome {
    Values(BTreeMap<String, String>),
    /// The first line rejected.
    Error(Option<usize>),
}

fn python_outcomes(paths: &[PathBuf]) -> (String, Vec<(Outcome, String)>) {
    let dir = paths[0].parent().unwrap();
    let list = dir.join("cases.json");
    std::fs::write(&list, serde_json::to_vec(paths).unwrap()).unwrap();
    // `-X utf8`: files are UTF-8 whatever the locale (as on any machine a user configures).
    let output = Command::new("python3")
        .args(["-X", "utf8", "-c", PYTHON])
        .arg(&list)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs `python3` (Python 3) on PATH to compare with configparser: {e}")
        });
    assert!(
        output.status.success(),
        "python3 failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("python3 printed JSON");
    let version = json["version"].as_str().unwrap().to_owned();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), paths.len());
    let outcomes = results
        .iter()
        .map(|r| match r.get("ok") {
            Some(map) => {
                let map = map.as_object().unwrap().iter();
                let map = map.map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()));
                (Outcome::Values(map.collect()), String::new())
            }
            None => (
                Outcome::Error(r["line"].as_u64().map(|l| l as usize)),
                r["error"].as_str().unwrap().to_owned(),
            ),
        })
        .collect();
    (version, outcomes)
}

fn our_outcome(path: &Path, text: &str) -> (Outcome, String) {
    let ours = file::read(path, true);
    // The public entry point runs the library's own copy of the reader.
    let public = tower_opik::config::check_config_file(&path.display().to_string(), text);
    assert_eq!(
        ours.is_ok(),
        public.is_ok(),
        "{text:?}: {ours:?} vs {public:?}"
    );
    match ours {
        Ok(values) => {
            let values = values.expect("the file exists");
            let map = values
                .entries()
                .map(|(k, v, _)| (k.to_owned(), v.to_owned()));
            (Outcome::Values(map.collect()), String::new())
        }
        Err(e @ ConfigError::Syntax { line, .. }) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("{}:{line}: ", path.display())),
                "{shown}"
            );
            (Outcome::Error(Some(line)), shown)
        }
        Err(e) => (Outcome::Error(None), e.to_string()),
    }
}

/// Known differences, found by review: each must read as Python reads it.
const REGRESSIONS: &[&str] = &[
    // A blank line inside a continued value is part of it.
    "[opik]\nproject_name = first\n\n  second\nworkspace = w\n",
    "[opik]\nproject_name = a\n\n\n  b\n\n",
    // A uniformly indented file: separate keys, not one continued value.
    "  [opik]\n  url_override = http://localhost:5173/api/\n  api_key = k\n  workspace = w\n",
    "\t[opik]\n\turl_override = http://a/\n\t  continued\n\tapi_key = k\n",
    // Less indented than the key: a key of its own, or an error.
    "[opik]\n    workspace = w\n  project_name = p\n",
    "[opik]\n    workspace = w\n  p\n",
];

fn pick(items: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(items).prop_map(str::to_owned).boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        6 => pick(&["url_override", "api_key", "workspace", "project_name", "sample_rate",
                    "spool_dir", "spool_max_bytes", "track_disable"]),
        2 => pick(&["URL_Override", "WorkSpace", "PROJECT_NAME", "a b", "x.y", "[k", "k]",
                    "ΣΑΣ", "İd", "é"]),
        2 => "[a-z_]{1,5}",
    ]
    .boxed()
}

fn value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9 ]{0,8}",
        3 => pick(&["", "http://localhost:5173/api/", "100%", "%(workspace)s", "a%%b",
                    "v # not a comment", "v ; nor this", "k=v", "k: v", "[x]", " \t ",
                    "é\u{a0}", "x\u{1c}", "\u{3000}y", "1 GiB", "~/spool"]),
    ]
    .boxed()
}

fn content() -> BoxedStrategy<String> {
    let sp = || pick(&["", "", " ", "\t", "  "]);
    prop_oneof![
        3 => pick(&["[opik]", "[opik]", "[DEFAULT]", "[other]", "[OPIK]", "[ opik ]",
                    "[opik] # c", "[opik]]", "[a]b]", "[opik", "[]", "[]]", "[=]"]),
        10 => (key(), sp(), pick(&["=", "=", ":"]), sp(), value(), sp())
            .prop_map(|(k, a, d, b, v, c)| format!("{k}{a}{d}{b}{v}{c}")),
        3 => value(),
        3 => pick(&["", "", " ", "\t", "\u{c}", "\u{1c}"]),
        2 => pick(&["# c", "; c", "#", ";", "# k = v", "; [opik]"]),
        1 => pick(&["no separator", "= v", ": v", " =", "[]=x"]),
    ]
    .boxed()
}

fn indent() -> BoxedStrategy<String> {
    prop_oneof![
        12 => Just(String::new()),
        6 => pick(&[" ", "  ", "    ", "\t"]),
        1 => pick(&["\u{3000}", "\u{1c}", " \t"]),
    ]
    .boxed()
}

/// An INI text: a line ending style, a uniform indentation, maybe a BOM, lines.
fn ini_text() -> BoxedStrategy<String> {
    let line = (indent(), content(), pick(&["\n", "\n", "\n", "\r\n", "\r"]));
    (
        0..4usize,
        pick(&["", "", "", "  ", "\t"]),
        prop::bool::weighted(0.03),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop::collection::vec(line, 0..10),
    )
        .prop_map(|(eol_style, uniform, bom, header, final_eol, lines)| {
            let mut text = String::from(if bom { "\u{feff}" } else { "" });
            let header = header.then(|| (String::new(), "[opik]".to_owned(), "\n".to_owned()));
            let count = lines.len() + usize::from(header.is_some());
            for (i, (indent, content, eol)) in header.into_iter().chain(lines).enumerate() {
                let eol = match eol_style {
                    0 | 1 => "\n",
                    2 => "\r\n",
                    _ => &eol,
                };
                text.push_str(&uniform);
                text.push_str(&indent);
                text.push_str(&content);
                if final_eol || i + 1 < count {
                    text.push_str(eol);
                }
            }
            text
        })
        .boxed()
}

fn generated(count: usize) -> Vec<String> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[0x0b; 32]),
    );
    let strategy = ini_text();
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

#[test]
fn config_files_read_as_python_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = REGRESSIONS
        .iter()
        .map(|t| (*t).to_owned())
        .chain(generated(600))
        .collect();
    let paths: Vec<PathBuf> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.path().join(format!("case-{i}.config"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let (version, python) = python_outcomes(&paths);
    let mut mismatches = Vec::new();
    let mut accepted = 0;
    for ((text, path), (theirs, why)) in texts.iter().zip(&paths).zip(python) {
        let (ours, our_why) = our_outcome(path, text);
        accepted += usize::from(matches!(theirs, Outcome::Values(_)));
        if ours != theirs {
            mismatches.push((text, theirs, why, ours, our_why));
        }
    }
    mismatches.sort_by_key(|m| m.0.len());
    let shown: Vec<String> = mismatches
        .iter()
        .take(6)
        .map(|(text, theirs, why, ours, our_why)| {
            format!("{text:?}\n  python: {theirs:?} {why}\n  ours:   {ours:?} {our_why}")
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} files read differently from Python {version} (shortest first):\n{}",
        mismatches.len(),
        texts.len(),
        shown.join("\n")
    );
    // The generator must give Python files to accept, not only errors to agree on.
    assert!(accepted * 4 > texts.len(), "only {accepted} accepted");
}

#[test]
fn known_differences_read_as_python_reads_them() {
    let read = |text: &str| -> Result<BTreeMap<String, String>, usize> {
        match file::parse(text, Path::new("/x/.opik.config")) {
            Ok(v) => Ok(v
                .entries()
                .map(|(k, v, _)| (k.to_owned(), v.to_owned()))
                .collect()),
            Err(ConfigError::Syntax { line, .. }) => Err(line),
            Err(e) => panic!("{e}"),
        }
    };
    let map = |pairs: &[(&str, &str)]| -> Result<BTreeMap<String, String>, usize> {
        Ok(pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect())
    };
    let expected = [
        map(&[("project_name", "first\n\nsecond"), ("workspace", "w")]),
        map(&[("project_name", "a\n\n\nb")]),
        map(&[
            ("url_override", "http://localhost:5173/api/"),
            ("api_key", "k"),
            ("workspace", "w"),
        ]),
        map(&[("url_override", "http://a/\ncontinued"), ("api_key", "k")]),
        map(&[("workspace", "w"), ("project_name", "p")]),
        Err(3),
    ];
    for (text, expected) in REGRESSIONS.iter().zip(expected) {
        assert_eq!(read(text), expected, "{text:?}");
    }
}
