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
        let json = decode_base64(attributes).ok_or("the API key's attributes are not base64")?;
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

/// Standard base64 (padding optional, as Python's helper fixes it), `None` when invalid.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("a$==").is_none());
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
    }
}
