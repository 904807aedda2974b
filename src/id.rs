//! Trace and span ids: UUIDv7, minted from the current time (SPEC §2).
//!
//! Opik answers 400 to an entity id that is not a version-7 UUID, and one bad id fails the
//! whole batch, so every id this crate mints or accepts from the outside goes through here.

use uuid::Uuid;

/// Mints a fresh UUIDv7 from the current time.
///
/// ```
/// let id = tower_opik::id::new_id();
/// assert_eq!(id.get_version_num(), 7);
/// ```
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses an id received from outside (a header, baggage, an attribute): canonical UUID text
/// (hyphenated, any case) of version 7, surrounding whitespace trimmed.
///
/// Returns `None` for anything else, including valid UUIDs of other versions.
///
/// ```
/// use tower_opik::id::parse_v7;
/// let id = tower_opik::id::new_id();
/// assert_eq!(parse_v7(&format!("  {id} ")), Some(id));
/// assert_eq!(parse_v7("6ba7b810-9dad-41d1-80b4-00c04fd430c8"), None); // v4
/// assert_eq!(parse_v7("not-a-uuid"), None);
/// ```
pub fn parse_v7(text: &str) -> Option<Uuid> {
    let text = text.trim();
    // Only the canonical hyphenated form (36 chars): no braces, no URN, no simple form.
    if text.len() != 36 {
        return None;
    }
    let id = Uuid::try_parse(text).ok()?;
    (id.get_version_num() == 7).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_v7_and_increase() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(b > a);
    }

    #[test]
    fn parse_rejects_non_canonical_forms() {
        let id = new_id();
        assert_eq!(parse_v7(&id.to_string().to_uppercase()), Some(id));
        assert_eq!(parse_v7(&id.simple().to_string()), None);
        assert_eq!(parse_v7(&id.braced().to_string()), None);
        assert_eq!(parse_v7(&id.urn().to_string()), None);
        assert_eq!(parse_v7(""), None);
        assert_eq!(parse_v7("00000000-0000-0000-0000-000000000000"), None);
    }
}
