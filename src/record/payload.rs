//! Payloads as JSON text, serialized once when set: `input`, `output` and `metadata` leave
//! the request path as bytes, with no `serde_json::Value` tree, and the export task copies
//! the bytes into the batch body (`encode.rs`). The text is valid JSON by construction
//! (serde_json wrote it), so it is never parsed again on the way out.

use serde::Serialize;
use serde_json::value::RawValue;

use super::JsonObject;

/// A JSON object as its text, the shape Opik wants for `input` and `output`: made once from
/// any `Serialize` value ([`Payload::from_serialize`]), then only copied into the batch
/// body. Serializes as the object itself.
///
/// ```
/// use tower_opik::record::Payload;
/// let p = Payload::from_serialize(serde_json::json!({"prompt": "hi"}), "input").unwrap();
/// assert_eq!(p.as_str(), r#"{"prompt":"hi"}"#);
/// // Anything but an object is wrapped under the key, as the Python SDK does.
/// let p = Payload::from_serialize("hi", "input").unwrap();
/// assert_eq!(p.as_str(), r#"{"input":"hi"}"#);
/// assert!(Payload::from_serialize((), "input").is_none()); // null: no payload
/// assert_eq!(p.to_object()["input"], "hi");
/// ```
#[derive(Clone)]
pub struct Payload(Box<str>);

impl Payload {
    /// Serializes `value` into a payload: an object as it is, `null` as `None`, any other
    /// value `v` as `{key: v}`. A value whose `Serialize` fails (a map with non-string keys,
    /// a failing impl) becomes `{key: "<not serializable: ...>"}`: never a panic, never a
    /// lost span.
    ///
    /// ```
    /// let p = tower_opik::record::Payload::from_serialize(vec![1, 2], "output").unwrap();
    /// assert_eq!(p.as_str(), r#"{"output":[1,2]}"#);
    /// ```
    pub fn from_serialize(value: impl Serialize, key: &str) -> Option<Self> {
        let text = match json_text(&value) {
            Ok(text) => text,
            Err(e) => return Some(Self::wrapped(key, &not_serializable(&e))),
        };
        match text.as_bytes().first() {
            Some(b'{') => Some(Self(text)),
            Some(b'n') if &*text == "null" => None,
            _ => Some(Self::wrapped(key, &text)),
        }
    }

    /// `{key: raw}`: `raw` is valid JSON text.
    fn wrapped(key: &str, raw: &str) -> Self {
        let key = serde_json::to_string(key).unwrap_or_else(|_| "\"value\"".into());
        let mut text = String::with_capacity(key.len() + raw.len() + 3);
        text.push('{');
        text.push_str(&key);
        text.push(':');
        text.push_str(raw);
        text.push('}');
        Self(text.into_boxed_str())
    }

    /// The JSON text of the object.
    ///
    /// ```
    /// let p = tower_opik::record::Payload::from_serialize(serde_json::json!({"a": 1}), "x").unwrap();
    /// assert_eq!(p.as_str(), r#"{"a":1}"#);
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The length of its JSON text, in bytes.
    ///
    /// ```
    /// let p = tower_opik::record::Payload::from_serialize(serde_json::json!({}), "x").unwrap();
    /// assert_eq!(p.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is `{}`.
    ///
    /// ```
    /// let p = tower_opik::record::Payload::from_serialize(serde_json::json!({}), "x").unwrap();
    /// assert!(p.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.as_str()
            .trim_start_matches('{')
            .trim_start()
            .starts_with('}')
    }

    /// Parses it back into a map (for tests and custom exporters; the store never does).
    ///
    /// ```
    /// let p = tower_opik::record::Payload::from_serialize(serde_json::json!({"a": 1}), "x").unwrap();
    /// assert_eq!(p.to_object()["a"], 1);
    /// ```
    pub fn to_object(&self) -> JsonObject {
        serde_json::from_str(self.as_str()).unwrap_or_default()
    }
}

/// The most a thread keeps of its serialization buffer between payloads.
const SCRATCH_KEPT: usize = 256 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `value`'s JSON text in one allocation of its exact size: serialized into a buffer the
/// thread keeps (up to 256 KiB), then copied once. `serde_json::to_string` grows its string
/// by doubling, four or five reallocations for a 1 KB prompt, and up to three times the
/// payload's size at its peak.
fn json_text(value: &impl Serialize) -> serde_json::Result<Box<str>> {
    let from = |buf: &[u8]| -> Box<str> {
        // serde_json writes UTF-8 only.
        String::from_utf8_lossy(buf).into()
    };
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let written = serde_json::to_writer(&mut *buf, value);
            let text = written.map(|()| from(&buf));
            if buf.capacity() > SCRATCH_KEPT {
                buf.clear();
                buf.shrink_to(SCRATCH_KEPT);
            }
            text
        }
        // A `Serialize` impl that sets a payload itself: a buffer of its own.
        Err(_) => serde_json::to_vec(value).map(|v| from(&v)),
    })
}

fn not_serializable(e: &serde_json::Error) -> String {
    serde_json::to_string(&format!("<not serializable: {e}>")).unwrap_or_else(|_| "null".into())
}

impl From<JsonObject> for Payload {
    fn from(map: JsonObject) -> Self {
        Self(
            serde_json::to_string(&map)
                .unwrap_or_else(|_| "{}".into())
                .into_boxed_str(),
        )
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Raw(&self.0).serialize(s)
    }
}

/// Free-form metadata: keys and their values as JSON text, each serialized once when set.
/// Setting a key again replaces its value; order of first setting is kept (and `==`
/// compares that order too).
///
/// ```
/// use tower_opik::record::Metadata;
/// let mut m = Metadata::default();
/// m.insert("model", "gpt-4o");
/// m.insert("temperature", 0.2);
/// m.insert("model", "gpt-4.1");
/// assert_eq!(m.get("model"), Some(r#""gpt-4.1""#));
/// assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"model":"gpt-4.1","temperature":0.2}"#);
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Box<str>)>,
}

impl Metadata {
    /// Sets `key` to `value` (serialized now; a value that cannot be serialized becomes
    /// `"<not serializable: ...>"`).
    ///
    /// ```
    /// let mut m = tower_opik::record::Metadata::default();
    /// m.insert("retries", 2);
    /// assert_eq!(m.get("retries"), Some("2"));
    /// ```
    pub fn insert(&mut self, key: impl Into<String>, value: impl Serialize) {
        let text = json_text(&value).unwrap_or_else(|e| not_serializable(&e).into_boxed_str());
        self.insert_json(key.into(), text);
    }

    /// Sets `key` to JSON text the caller guarantees valid.
    pub(crate) fn insert_json(&mut self, key: String, json: Box<str>) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = json,
            None => self.entries.push((key, json)),
        }
    }

    /// Merges `entries`: an object's keys (each replacing the same key), any other value
    /// under `key`.
    ///
    /// ```
    /// let mut m = tower_opik::record::Metadata::default();
    /// m.extend(serde_json::json!({"a": 1, "b": [2]}), "metadata");
    /// m.extend("loose", "metadata");
    /// assert_eq!(m.get("b"), Some("[2]"));
    /// assert_eq!(m.get("metadata"), Some(r#""loose""#));
    /// ```
    pub fn extend(&mut self, entries: impl Serialize, key: &str) {
        let Some(payload) = Payload::from_serialize(entries, key) else {
            return;
        };
        // The payload is an object: read its members as raw JSON, without a `Value` tree.
        let members: Vec<(String, Box<RawValue>)> =
            serde_json::from_str::<RawMap>(payload.as_str()).map_or_else(|_| Vec::new(), |m| m.0);
        for (k, v) in members {
            self.insert_json(k, String::from(v.get()).into_boxed_str());
        }
    }

    /// Moves `other`'s entries in (each replacing the same key): serialization happens
    /// outside the span's lock, the merge inside.
    pub(crate) fn merge(&mut self, other: Metadata) {
        if self.entries.is_empty() {
            self.entries = other.entries;
            return;
        }
        for (k, v) in other.entries {
            self.insert_json(k, v);
        }
    }

    /// The JSON text of `key`'s value (a string value keeps its quotes), `None` when the key
    /// is not set.
    ///
    /// ```
    /// let mut m = tower_opik::record::Metadata::default();
    /// m.insert("model", "gpt-4o");
    /// m.insert("max_tokens", 512);
    /// assert_eq!(m.get("model"), Some(r#""gpt-4o""#));
    /// assert_eq!(m.get("max_tokens"), Some("512"));
    /// assert_eq!(m.get("temperature"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    /// Whether `key` is set.
    ///
    /// ```
    /// let mut m = tower_opik::record::Metadata::default();
    /// m.insert("a", true);
    /// assert!(m.contains_key("a"));
    /// ```
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// How many keys are set (a key set twice counts once).
    ///
    /// ```
    /// let mut m = tower_opik::record::Metadata::default();
    /// m.extend(serde_json::json!({"temperature": 0.2, "top_p": 0.9}), "metadata");
    /// m.insert("temperature", 0.7);
    /// assert_eq!(m.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is set (the default). Empty metadata is left out of the record's
    /// JSON, not sent as `{}`.
    ///
    /// ```
    /// let mut m = tower_opik::record::Metadata::default();
    /// m.extend(serde_json::Value::Null, "metadata"); // null adds nothing
    /// assert!(m.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys and their values' JSON text, in the order they were first set.
    ///
    /// ```
    /// let mut m = tower_opik::record::Metadata::default();
    /// m.insert("a", 1);
    /// assert_eq!(m.iter().collect::<Vec<_>>(), [("a", "1")]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// Parsed into a map (for tests and custom exporters; the store never does).
    ///
    /// ```
    /// let mut m = tower_opik::record::Metadata::default();
    /// m.insert("a", 1);
    /// assert_eq!(m.to_object()["a"], 1);
    /// ```
    pub fn to_object(&self) -> JsonObject {
        self.iter()
            .map(|(k, v)| (k.to_owned(), serde_json::from_str(v).unwrap_or_default()))
            .collect()
    }

    /// The bytes its JSON text holds (keys and values), for the store's memory bound.
    pub(crate) fn byte_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum()
    }
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, &Raw(v))?;
        }
        map.end()
    }
}

impl From<JsonObject> for Metadata {
    fn from(map: JsonObject) -> Self {
        let mut m = Self::default();
        for (k, v) in map {
            m.insert(k, v);
        }
        m
    }
}

/// Valid JSON text, written as it is through serde (a `&RawValue`, checked once here: only
/// the public `Serialize` path takes this; the store's encoder copies the text).
pub(crate) struct Raw<'a>(pub(crate) &'a str);

impl Serialize for Raw<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(self.0) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.serialize_unit(),
        }
    }
}

/// The members of a JSON object's text, as raw JSON, in order (none if it is not one).
pub(crate) fn object_members(text: &str) -> Vec<(String, Box<RawValue>)> {
    serde_json::from_str::<RawMap>(text).map_or_else(|_| Vec::new(), |m| m.0)
}

/// An object's members as raw JSON, in order.
struct RawMap(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for RawMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<RawMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Box<RawValue>>()? {
                    out.push((k, v));
                }
                Ok(RawMap(out))
            }
        }
        d.deserialize_map(Visit)
    }
}
