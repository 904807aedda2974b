//! The API key: a secret that never shows in `Debug`, `Display`, errors or logs.

use http::HeaderValue;

/// An Opik API key. Its `Debug` and `Display` are redacted; only
/// [`expose_secret`](Self::expose_secret) and the `Authorization` header see the key.
///
/// ```
/// let key = tower_opik::config::ApiKey::new("sk-very-secret");
/// assert_eq!(format!("{key:?}"), "ApiKey(***)");
/// assert_eq!(key.to_string(), "***");
/// assert_eq!(key.expose_secret(), "sk-very-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    ///
    /// ```
    /// let key = tower_opik::config::ApiKey::new("k");
    /// # let _ = key;
    /// ```
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself. Send it, never log it.
    ///
    /// ```
    /// assert_eq!(tower_opik::config::ApiKey::new("k").expose_secret(), "k");
    /// ```
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The key as an `Authorization` header value (the raw key, no `Bearer`, as the Opik
    /// SDKs send it), marked sensitive so that HTTP libraries do not print it. `None` when
    /// the key holds characters a header cannot.
    ///
    /// ```
    /// let v = tower_opik::config::ApiKey::new("k").to_header_value().unwrap();
    /// assert!(v.is_sensitive());
    /// assert!(tower_opik::config::ApiKey::new("bad\nkey").to_header_value().is_none());
    /// ```
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        let mut value = HeaderValue::from_str(&self.0).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// The base URL embedded in an Opik Cloud key (`<key>*<base64 JSON>` with a `baseUrl`
    /// attribute), as the Python SDK reads it. `Ok(None)` for a plain key.
    pub(crate) fn embedded_base_url(&self) -> Result<Option<String>, &'static str> {
        let mut parts = self.0.split('*');
        let (Some(_key), attributes) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        if parts.next().is_some() {
            return Err("the API key has more than one '*'");
        }
        let Some(attributes) = attributes.filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let json =
            decode_attributes(attributes).ok_or("the API key's attributes are not base64")?;
        let value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|_| "the API key's attributes are not JSON")?;
        Ok(value
            .get("baseUrl")
            .and_then(|v| v.as_str())
            .map(str::to_owned))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The API key's attributes, decoded as Opik's Python SDK does in
/// `sdks/python/src/opik/api_key/base64_helper.py`: `base64.b64decode(data, validate=True)`,
/// so the standard alphabet only (no `-`/`_`, no whitespace) and trailing bits unchecked.
/// Kept by hand because it is Opik's rule, not base64's: its padding fix-up, where a length
/// not a multiple of 4 ending in `=` loses every `=` (the padding it then adds is what
/// `Indifferent` accepts). `None` when invalid.
fn decode_attributes(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const PYTHON: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    if !text.len().is_multiple_of(4) && text.ends_with('=') {
        PYTHON.decode(text.replace('=', "")).ok()
    } else {
        PYTHON.decode(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case as Python's `base64_helper.decode_base64` answers it (CPython 3.11).
    #[test]
    fn attributes_decode_as_the_python_sdk_does() {
        let ok: &[(&str, &[u8])] = &[
            ("aGVsbG8=", b"hello"),
            ("aGVsbG8", b"hello"), // missing padding is added
            ("aGk=", b"hi"),
            ("aGk", b"hi"),
            ("aGk==", b"hi"), // a length not a multiple of 4 ending in '=' loses every '='
            ("aGk===", b"hi"),
            ("aGVsbG8==", b"hello"),
            ("aG=k=", b"hi"),
            ("aGl=", b"hi"), // trailing bits are not checked
            ("YR", b"a"),
            ("a+/b", b"k\xef\xdb"),
            ("", b""),
            ("=", b""),
        ];
        for (text, want) in ok {
            assert_eq!(decode_attributes(text).as_deref(), Some(*want), "{text:?}");
        }
        let refused = [
            ("a", "one symbol too many"),
            ("a=", "one symbol too many once its '=' goes"),
            ("a$==", "not base64"),
            (
                "a-_b",
                "URL-safe: Python decodes the standard alphabet only",
            ),
            ("____", "URL-safe"),
            ("aGk\n", "whitespace is not skipped (validate=True)"),
            ("aGk ", "whitespace"),
            (" aGk", "whitespace"),
            ("aG k", "whitespace"),
            ("aGk=\n", "whitespace"),
            ("aGk=====", "excess padding in a multiple of 4"),
            ("aGVs=bG8", "data after padding"),
            ("aGk=aGk=", "data after padding"),
            ("=aGk", "leading padding"),
            ("====", "padding only"),
            ("\u{e9}", "not ASCII"),
            ("\0\0\0\0", "control characters"),
        ];
        for (text, why) in refused {
            assert_eq!(decode_attributes(text), None, "{text:?}: {why}");
        }
    }

    #[test]
    fn embedded_base_url() {
        let attrs = "eyJiYXNlVXJsIjoiaHR0cHM6Ly9leGFtcGxlLmNvbS8ifQ"; // {"baseUrl":"https://example.com/"}
        let key = ApiKey::new(format!("abc*{attrs}"));
        assert_eq!(
            key.embedded_base_url().unwrap().as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(ApiKey::new("plain").embedded_base_url().unwrap(), None);
        assert_eq!(ApiKey::new("plain*").embedded_base_url().unwrap(), None);
        assert!(ApiKey::new("a*b*c").embedded_base_url().is_err());
        assert!(ApiKey::new("a*%%%").embedded_base_url().is_err());
        let padded = ApiKey::new(format!("abc*{attrs}=="));
        assert_eq!(
            padded.embedded_base_url().unwrap().as_deref(),
            Some("https://example.com/")
        );
        // {"baseUrl":"https://x.io/?a=>>>"}: a '+' in the standard alphabet, '-' in the
        // URL-safe one, which Python refuses.
        let plus = ApiKey::new("abc*eyJiYXNlVXJsIjoiaHR0cHM6Ly94LmlvLz9hPT4+PiJ9");
        assert_eq!(
            plus.embedded_base_url().unwrap().as_deref(),
            Some("https://x.io/?a=>>>")
        );
        let url_safe = ApiKey::new("abc*eyJiYXNlVXJsIjoiaHR0cHM6Ly94LmlvLz9hPT4-PiJ9");
        assert!(url_safe.embedded_base_url().is_err());
        assert!(
            ApiKey::new(format!("abc*{attrs}\n"))
                .embedded_base_url()
                .is_err()
        );
        assert!(
            ApiKey::new(format!("abc* {attrs}"))
                .embedded_base_url()
                .is_err()
        );
        assert!(
            ApiKey::new("abc*aGk").embedded_base_url().is_err(),
            "not JSON"
        );
        assert_eq!(ApiKey::new("abc*e30").embedded_base_url().unwrap(), None); // {}
        // Garbage of every kind is an error or `None`, never a panic.
        for n in 0..512u32 {
            let junk: String = (0..n % 23)
                .map(|i| char::from_u32((n * 31 + i * 7) % 0x180).unwrap_or('?'))
                .collect();
            let _ = ApiKey::new(format!("k*{junk}")).embedded_base_url();
        }
    }
}
