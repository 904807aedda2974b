//! `~/.opik.config`: the INI file the Python SDK writes and reads, parsed as the SDK's
//! `configparser` reads it (see [`parse`]; `tests/config_file_python.rs` compares the two).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ValueSource};

/// The longest config file read (a real one is a few hundred bytes).
const MAX_FILE_LEN: u64 = 1 << 20;

/// The section of tower-opik's own settings. Not `[opik]`: Opik's Python SDK refuses a file
/// whose `[opik]` section has a key it does not know (its `OpikConfig` is a pydantic
/// settings class that forbids extra inputs; checked with opik 2.2.122), and ignores other
/// sections.
pub(crate) const OURS: &str = "tower_opik";

/// Keys of ours, refused in `[opik]` (and `[DEFAULT]`, which Python reads into `[opik]`)
/// for that reason.
const OUR_KEYS: [&str; 3] = ["sample_rate", "spool_dir", "spool_max_bytes"];

/// The `[opik]` values of a config file, and the `[tower_opik]` ones, each with its line.
#[derive(Debug, Default)]
pub(crate) struct FileValues {
    pub(crate) path: PathBuf,
    values: HashMap<String, (String, usize)>,
    ours: HashMap<String, (String, usize)>,
}

impl FileValues {
    /// A value of the `[opik]` section (or `[DEFAULT]`), blank ones counting as unset.
    pub(crate) fn get(&self, key: &str) -> Option<(&str, ValueSource)> {
        self.lookup(&self.values, key)
    }

    /// A value of the `[tower_opik]` section, blank ones counting as unset.
    pub(crate) fn get_ours(&self, key: &str) -> Option<(&str, ValueSource)> {
        self.lookup(&self.ours, key)
    }

    fn lookup<'a>(
        &'a self,
        map: &'a HashMap<String, (String, usize)>,
        key: &str,
    ) -> Option<(&'a str, ValueSource)> {
        map.get(key)
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

    /// Every `[opik]` value, blank ones too, with its line (for the tests, which compare
    /// them with Python's).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &str, usize)> {
        self.values
            .iter()
            .map(|(k, (v, line))| (k.as_str(), v.as_str(), *line))
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

/// Parses INI text exactly as the Python SDK's `configparser.ConfigParser(interpolation=None)`
/// reads it (`opik/config.py`, `IniConfigSettingsSource._read_file`, SDK 2.2.122), which is
/// CPython's default configuration but for interpolation (so `%` is literal):
///
/// - lines end at `\n`, `\r\n` or a lone `\r` (Python's universal newlines); a BOM is not
///   skipped (so it makes the first line an error, as in Python);
/// - a line whose first non-space character is `#` or `;` is a comment, even inside a value;
///   there are no inline comments;
/// - `[name]` is a section header: the name runs to the *last* `]` and anything after it is
///   ignored; names are case-sensitive; `[DEFAULT]` may appear more than once;
/// - `key = value` or `key: value`, split at the first `=` or `:`; the key is lowercased,
///   both are stripped of whitespace (Python's `str.strip`, see [`is_space`]);
/// - a line indented *more* than the key's line continues its value; blank lines between
///   continuation lines are kept, trailing ones dropped;
/// - strict: a line before any section, a line that is neither a header nor `key = value`, an
///   empty key, a repeated section or a repeated key in a section is an error naming the line;
/// - the `[opik]` values are the section's own over `[DEFAULT]`'s, and nothing without an
///   `[opik]` section (`config.items("opik")` is only read when the section exists).
pub(crate) fn parse(text: &str, path: &Path) -> Result<FileValues, ConfigError> {
    let err = |line: usize, message: &str| ConfigError::Syntax {
        path: path.to_owned(),
        line,
        message: message.to_owned(),
    };
    let mut opik: HashMap<String, (String, usize)> = HashMap::new();
    let mut ours: HashMap<String, (String, usize)> = HashMap::new();
    let mut defaults: HashMap<String, (String, usize)> = HashMap::new();
    let mut seen_sections: HashSet<&str> = HashSet::new();
    let mut seen_keys: HashSet<(&str, String)> = HashSet::new();
    let mut section: Option<&str> = None;
    // The key continuation and blank lines extend, and the indentation of its line.
    let mut last_key: Option<String> = None;
    let mut indent_level = 0;
    for (index, raw) in lines(text).enumerate() {
        let line_no = index + 1;
        let value = strip(raw);
        if value.starts_with(['#', ';']) {
            continue;
        }
        let target = match section {
            Some("opik") => Some(&mut opik),
            Some("DEFAULT") => Some(&mut defaults),
            Some(OURS) => Some(&mut ours),
            _ => None,
        };
        let current = last_key
            .as_ref()
            .zip(target)
            .and_then(|(key, map)| map.get_mut(key));
        if value.is_empty() {
            // Kept only if a continuation line follows: trailing newlines are stripped.
            if let Some(entry) = current {
                entry.0.push('\n');
            }
            continue;
        }
        let indent = raw.chars().take_while(|&c| is_space(c)).count();
        if last_key.is_some() && indent > indent_level {
            if let Some(entry) = current {
                entry.0.push('\n');
                entry.0.push_str(value);
            }
            continue;
        }
        indent_level = indent;
        if let Some(name) = section_header(value) {
            if name != "DEFAULT" && !seen_sections.insert(name) {
                return Err(err(line_no, &format!("section [{name}] appears twice")));
            }
            section = Some(name);
            last_key = None;
            continue;
        }
        let Some(name) = section else {
            return Err(err(line_no, "a line before any [section] header"));
        };
        let Some(split) = value.find(['=', ':']) else {
            if value.starts_with('[') {
                return Err(err(
                    line_no,
                    "a section header needs a name and a closing ']'",
                ));
            }
            return Err(err(line_no, "expected `key = value`"));
        };
        let key = value[..split].trim_end_matches(is_space).to_lowercase();
        if key.is_empty() {
            return Err(err(line_no, "a value without a key"));
        }
        if !seen_keys.insert((name, key.clone())) {
            return Err(err(
                line_no,
                &format!("key `{key}` appears twice in its section"),
            ));
        }
        if matches!(name, "opik" | "DEFAULT") && OUR_KEYS.contains(&key.as_str()) {
            return Err(err(
                line_no,
                &format!(
                    "`{key}` is tower-opik's, not the Opik SDK's: in [{name}] it makes Opik's \
                     Python SDK refuse this file (it reads [DEFAULT] into [opik], and forbids \
                     keys it does not know there); put it under a [{OURS}] section"
                ),
            ));
        }
        if name == OURS && !OUR_KEYS.contains(&key.as_str()) {
            // Our own section: a typo must not silently mean "no spool".
            return Err(err(
                line_no,
                &format!(
                    "unknown key `{key}` in [{OURS}] (its keys: {})",
                    OUR_KEYS.join(", ")
                ),
            ));
        }
        let entry = (strip(&value[split + 1..]).to_owned(), line_no);
        match name {
            "opik" => opik.insert(key.clone(), entry),
            "DEFAULT" => defaults.insert(key.clone(), entry),
            OURS => ours.insert(key.clone(), entry),
            _ => None,
        };
        last_key = Some(key);
    }
    if !seen_sections.contains("opik") {
        opik.clear();
    } else {
        for (key, value) in defaults {
            opik.entry(key).or_insert(value);
        }
    }
    for (value, _) in opik.values_mut().chain(ours.values_mut()) {
        value.truncate(value.trim_end_matches(is_space).len());
    }
    Ok(FileValues {
        path: path.to_owned(),
        values: opik,
        ours,
    })
}

/// Python's `str.isspace` (and its `re`'s `\s`): Rust's `char::is_whitespace` and the ASCII
/// separators U+001C to U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// The lines as Python reads a file in text mode: `\n`, `\r\n` and a lone `\r` end a line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let line = &rest[..end];
        let ending = if rest[end..].starts_with("\r\n") {
            2
        } else {
            usize::from(end < rest.len())
        };
        rest = &rest[end + ending..];
        Some(line)
    })
}

/// configparser's `\[(?P<header>.+)\]` matched at the start of a stripped line: the name runs
/// to the last `]` and must not be empty; the rest of the line is ignored.
fn section_header(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
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

    fn all(text: &str) -> Vec<(String, String, usize)> {
        let mut v: Vec<_> = p(text)
            .unwrap()
            .entries()
            .map(|(k, v, l)| (k.to_owned(), v.to_owned(), l))
            .collect();
        v.sort();
        v
    }

    fn kv(pairs: &[(&str, &str, usize)]) -> Vec<(String, String, usize)> {
        pairs
            .iter()
            .map(|&(k, v, l)| (k.to_owned(), v.to_owned(), l))
            .collect()
    }

    #[test]
    fn read_as_python_reads_it() {
        // Blank lines inside a continued value are kept, trailing ones dropped.
        let text = "[opik]\nproject_name = a\n\n  b\n\n\nworkspace = w\n";
        assert_eq!(
            all(text),
            kv(&[("project_name", "a\n\nb", 2), ("workspace", "w", 7)])
        );
        // A line continues a value only when indented more than the key's line.
        let text = "  [opik]\n  url_override = http://a/\n  api_key = k\n    more\n";
        assert_eq!(
            all(text),
            kv(&[("api_key", "k\nmore", 3), ("url_override", "http://a/", 2)])
        );
        // Lone CRs end lines; text after a header's last `]` is ignored; `%` is literal;
        // `[DEFAULT]` may repeat and only fills in an existing `[opik]`.
        let text = "[DEFAULT]\rworkspace=50%\r[opik] x\r[DEFAULT]\rapi_key : k\r";
        assert_eq!(
            all(text),
            kv(&[("api_key", "k", 5), ("workspace", "50%", 2)])
        );
        assert_eq!(all("[DEFAULT]\nworkspace = w\n"), kv(&[]));
        // `[k = v` is a key `[k`; a comment inside a value is skipped.
        let text = "[opik]\n[k = v\nworkspace = a\n  # c\n  b\n";
        assert_eq!(all(text), kv(&[("[k", "v", 2), ("workspace", "a\nb", 3)]));
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
            ("[opik]\n    a = 1\n  b\n", 3),
            ("\u{feff}[opik]\n", 1),
            ("[opik]\n[]\n", 2),
        ];
        for (text, line) in cases {
            match p(text) {
                Err(ConfigError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
