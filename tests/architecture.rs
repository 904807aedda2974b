//! The floors of ARCHITECTURE.md, checked: no module of `src/` imports one on its own floor
//! or above (arrows point down). Reads the table from ARCHITECTURE.md, so the doc and the
//! check cannot drift apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Names the crate root re-exports, and the module each comes from.
const ROOT_NAMES: &[(&str, &str)] = &[
    ("current_span", "context"),
    ("spawn", "context"),
    ("stream", "context"),
    ("update_current_trace", "context"),
    ("OpikFutureExt", "context"),
    ("OpikStreamExt", "context"),
    ("Span", "span"),
    ("TraceUpdate", "span"),
    ("SpanStore", "store"),
    ("OpikConfig", "config"),
    ("Error", "error"),
    ("DistributedHeaders", "headers"),
    ("Timestamp", "time"),
    ("ErrorInfo", "record"),
    ("SpanType", "record"),
    ("Usage", "record"),
    ("OpikLayer", "server"),
    ("DistributedScope", "scope"),
    ("current_distributed_headers", "scope"),
    ("inject_current", "scope"),
    ("track", "track"),
    ("__private", "track"),
];

fn floors() -> BTreeMap<String, usize> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let mut floors = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() == 4
            && let Ok(floor) = cells[1].parse::<usize>()
        {
            for module in cells[2].split_whitespace() {
                floors.insert(module.to_owned(), floor);
            }
        }
    }
    assert!(
        floors.len() > 10,
        "the floor table of ARCHITECTURE.md: {floors:?}"
    );
    floors
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None`: the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    if first == "lib.rs" {
        return None;
    }
    let name = first.trim_end_matches(".rs");
    // `headers_tests.rs` is `headers`' tests, included with `#[path]`.
    Some(name.trim_end_matches("_tests").to_owned())
}

/// Every `crate::name` in the code of `text` (line comments, doc comments included, aside).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `tower_opik_crate::` or the like
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((index + 1, name));
            }
        }
    }
    found
}

#[test]
fn no_module_imports_one_on_its_floor_or_above() {
    let floors = floors();
    let roots: BTreeMap<&str, &str> = ROOT_NAMES.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(&floor) = floors.get(&module) else {
            panic!(
                "{module} ({}) is on no floor of ARCHITECTURE.md",
                file.display()
            );
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, name) in crate_paths(&text) {
            let target = roots.get(name.as_str()).copied().unwrap_or(&name);
            if target == module {
                continue;
            }
            let Some(&target_floor) = floors.get(target) else {
                panic!(
                    "{}:{line}: crate::{name} is neither a module on a floor of \
                     ARCHITECTURE.md nor in ROOT_NAMES",
                    file.display()
                );
            };
            if target_floor >= floor {
                upward.push(format!(
                    "{}:{line}: {module} (floor {floor}) imports {target} (floor {target_floor})",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "arrows that point up or sideways:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_scan_sees_imports_and_not_comments() {
    let text = "use crate::span::Span; // crate::server\n/// [`x`](crate::otel)\nlet s = crate::current_span();\nfoo_crate::x";
    let names: Vec<String> = crate_paths(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["span", "current_span"]);
}
