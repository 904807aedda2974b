//! `~/.opik.config`: the INI file the Python SDK writes and reads, parsed as Python's
//! `configparser` reads it (strict mode, no interpolation).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ValueSource};

/// The longest config file read (a real one is a few hundred bytes).
const MAX_FILE_LEN: u64 = 1 << 20;

/// The `[opik]` values of a config file, each with its line.
#[derive(Debug, Default)]
pub(crate) struct FileValues {
    pub(crate) path: PathBuf,
    values: HashMap<String, (String, usize)>,
}

impl FileValues {
    /// A value of the `[opik]` section (or `[DEFAULT]`), blank ones counting as unset.
    pub(crate) fn get(&self, key: &str) -> Option<(&str, ValueSource)> {
        self.values
            .get(key)
            .filter(|(v, _)| !v.trim().is_empty())
            .map(|(v, line)| {
                (
                    v.as_str(),
                    ValueSource::File {
                        path: self.path.clone(),
                        line: *line,
                    },
                )
            })
    }
}

/// Reads and parses `path`. `Ok(None)` when it does not exist and `required` is false.
pub(crate) fn read(path: &Path, required: bool) -> Result<Option<FileValues>, ConfigError> {
    let io = |error| ConfigError::Io {
        path: path.to_owned(),
        error,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if meta.len() > MAX_FILE_LEN {
        return Err(io(std::io::Error::other("larger than 1 MiB")));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8",
        ))
    })?;
    parse(&text, path).map(Some)
}

/// Parses INI text: `[section]` headers, `key = value` or `key: value`, `#`/`;` comment
/// lines, indented continuation lines, case-insensitive keys. Strict like configparser:
/// a line before any section, a line without a separator, a duplicate section or a
/// duplicate key is an error naming the line.
pub(crate) fn parse(text: &str, path: &Path) -> Result<FileValues, ConfigError> {
    let err = |line: usize, message: &str| ConfigError::Syntax {
        path: path.to_owned(),
        line,
        message: message.to_owned(),
    };
    let mut opik: HashMap<String, (String, usize)> = HashMap::new();
    let mut defaults: HashMap<String, (String, usize)> = HashMap::new();
    let mut seen_sections: Vec<String> = Vec::new();
    let mut section: Option<String> = None;
    let mut section_keys: Vec<String> = Vec::new();
    // The key a continuation line would extend.
    let mut last_key: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            last_key = None;
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if indented && let Some(key) = &last_key {
            let target = match section.as_deref() {
                Some("opik") => Some(&mut opik),
                Some("DEFAULT") => Some(&mut defaults),
                _ => None,
            };
            if let Some(entry) = target.and_then(|m| m.get_mut(key)) {
                entry.0.push('\n');
                entry.0.push_str(trimmed);
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(err(line_no, "section header without a closing ']'"));
            };
            let name = name.to_owned();
            if seen_sections.contains(&name) {
                return Err(err(line_no, &format!("section [{name}] appears twice")));
            }
            seen_sections.push(name.clone());
            section = Some(name);
            section_keys.clear();
            last_key = None;
            continue;
        }
        if section.is_none() {
            return Err(err(line_no, "a line before any [section] header"));
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            return Err(err(line_no, "expected `key = value`"));
        };
        let key = trimmed[..split].trim().to_lowercase();
        if key.is_empty() {
            return Err(err(line_no, "a value without a key"));
        }
        let value = trimmed[split + 1..].trim().to_owned();
        if section_keys.contains(&key) {
            return Err(err(
                line_no,
                &format!("key `{key}` appears twice in its section"),
            ));
        }
        section_keys.push(key.clone());
        match section.as_deref() {
            Some("opik") => {
                opik.insert(key.clone(), (value, line_no));
            }
            Some("DEFAULT") => {
                defaults.insert(key.clone(), (value, line_no));
            }
            _ => {}
        }
        last_key = Some(key);
    }
    for (key, value) in defaults {
        opik.entry(key).or_insert(value);
    }
    Ok(FileValues {
        path: path.to_owned(),
        values: opik,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<FileValues, ConfigError> {
        parse(text, Path::new("/x/.opik.config"))
    }

    #[test]
    fn reads_the_opik_section() {
        let v = p("# comment\n; other\n[other]\nurl_override = nope\n\n[opik]\nURL_override = http://a/\napi_key: k\nworkspace =\n").unwrap();
        assert_eq!(v.get("url_override").unwrap().0, "http://a/");
        assert_eq!(v.get("api_key").unwrap().0, "k");
        assert!(v.get("workspace").is_none());
        assert_eq!(
            v.get("api_key").unwrap().1,
            ValueSource::File {
                path: "/x/.opik.config".into(),
                line: 8
            }
        );
    }

    #[test]
    fn default_section_is_a_fallback_and_continuations_join() {
        let v = p("[DEFAULT]\nworkspace = w\n[opik]\nproject_name = a\n  b\n").unwrap();
        assert_eq!(v.get("workspace").unwrap().0, "w");
        assert_eq!(v.get("project_name").unwrap().0, "a\nb");
    }

    #[test]
    fn malformed_files_name_the_line() {
        let cases = [
            ("url_override = x\n", 1),
            ("[opik]\nno separator here\n", 2),
            ("[opik\n", 1),
            ("[opik]\na = 1\nA = 2\n", 3),
            ("[opik]\n[opik]\n", 2),
            ("[opik]\n = value\n", 2),
        ];
        for (text, line) in cases {
            match p(text) {
                Err(ConfigError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
