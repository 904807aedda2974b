//! Trace and span ids: UUIDv7, minted from the current time.
//!
//! The rules are Opik's backend's (`IdGenerator` and `UuidV7TimestampValidator` in
//! `apps/opik-backend`), and one bad id fails a whole batch, so every id this crate mints or
//! accepts from the outside goes through here:
//!
//! - every id is a version-7 UUID (always enforced: 400 otherwise);
//! - with the backend's ingestion window on (`uuidValidation`, a window of 12 h to 45 days,
//!   24 h by default; off by default in a self-hosted Opik since its PR #7214, on where
//!   the operator enables it), the id of a *new* trace or span must carry a time within the
//!   window around now, and a *referenced* id (a span's `trace_id`, `parent_span_id`) must
//!   not carry a time beyond the window ahead of now; an old referenced id is fine (late
//!   spans of old traces are normal).
//!
//! This crate mints the ids of its own traces and spans now, so only the ids it receives
//! (headers, baggage, OTel attributes) can break the rule: [`parse_remote`] refuses those
//! dated more than [`MAX_FUTURE_SKEW`] ahead, and accepts old ones at any age.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// The farthest ahead of now the time embedded in a received id may be: 12 hours, the
/// smallest ingestion window an Opik backend can be configured with
/// (`UuidValidationConfig.window` is bounded to 12 h to 45 days in Opik's source), so a
/// span referencing an accepted id is never refused, whatever the backend's setting. Honest
/// clocks are seconds apart, not hours.
///
/// ```
/// assert_eq!(tower_opik::id::MAX_FUTURE_SKEW.as_secs(), 12 * 3600);
/// ```
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(12 * 3600);

/// Why a received id was refused.
///
/// ```
/// use tower_opik::id::{RemoteIdError, parse_remote};
/// assert_eq!(parse_remote("nope"), Err(RemoteIdError::NotUuidV7));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteIdError {
    /// Not the canonical text of a version-7 UUID.
    NotUuidV7,
    /// A UUIDv7 whose embedded time is more than [`MAX_FUTURE_SKEW`] ahead of now.
    InFuture,
}

impl std::fmt::Display for RemoteIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotUuidV7 => "not a UUIDv7",
            Self::InFuture => "a UUIDv7 dated more than 12 h ahead",
        })
    }
}

impl std::error::Error for RemoteIdError {}

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

/// Parses an id received from another service (a header, baggage, an OTel attribute) with
/// Opik's backend's rules: [`parse_v7`], and an embedded time no more than
/// [`MAX_FUTURE_SKEW`] ahead of now (any age in the past is fine: a queue consumer may
/// handle a message days old, and Opik accepts late spans of old traces).
///
/// # Errors
///
/// [`RemoteIdError::NotUuidV7`] for anything [`parse_v7`] refuses;
/// [`RemoteIdError::InFuture`] for a UUIDv7 dated too far ahead.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_opik::id::{RemoteIdError, parse_remote};
/// let now = tower_opik::id::new_id();
/// assert_eq!(parse_remote(&now.to_string()), Ok(now));
/// let ahead = SystemTime::now() + Duration::from_secs(13 * 3600);
/// let ms = ahead.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
/// let future = uuid::Builder::from_unix_timestamp_millis(ms, &[7; 10]).into_uuid();
/// assert_eq!(parse_remote(&future.to_string()), Err(RemoteIdError::InFuture));
/// let old = uuid::Builder::from_unix_timestamp_millis(1_600_000_000_000, &[7; 10]).into_uuid();
/// assert_eq!(parse_remote(&old.to_string()), Ok(old));
/// ```
pub fn parse_remote(text: &str) -> Result<Uuid, RemoteIdError> {
    let id = parse_v7(text).ok_or(RemoteIdError::NotUuidV7)?;
    check_remote(id)
}

/// The time rule of [`parse_remote`] on an id already parsed.
///
/// # Errors
///
/// [`RemoteIdError::NotUuidV7`] when `id` is not version 7; [`RemoteIdError::InFuture`] when
/// its time is more than [`MAX_FUTURE_SKEW`] ahead of now.
///
/// ```
/// let id = tower_opik::id::new_id();
/// assert_eq!(tower_opik::id::check_remote(id), Ok(id));
/// ```
pub fn check_remote(id: Uuid) -> Result<Uuid, RemoteIdError> {
    if id.get_version_num() != 7 {
        return Err(RemoteIdError::NotUuidV7);
    }
    let skew = MAX_FUTURE_SKEW.as_millis() as u64;
    let at = unix_millis(id);
    // The clock is read only when the id looks ahead of the last time read (an honest id is
    // never ahead of now, and the last reading lags now by less than the skew almost
    // always): a joined request reads no clock for its two ids.
    if at <= LAST_NOW_MS.load(Ordering::Relaxed).saturating_add(skew) {
        return Ok(id);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    LAST_NOW_MS.fetch_max(now, Ordering::Relaxed);
    if at > now.saturating_add(skew) {
        return Err(RemoteIdError::InFuture);
    }
    Ok(id)
}

/// The latest wall-clock time [`check_remote`] read, in Unix milliseconds (0: never).
static LAST_NOW_MS: AtomicU64 = AtomicU64::new(0);

/// The Unix time in milliseconds a UUIDv7 carries in its first 48 bits.
///
/// ```
/// let before = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
/// let id = tower_opik::id::new_id();
/// assert!(tower_opik::id::unix_millis(id) >= before);
/// ```
pub fn unix_millis(id: Uuid) -> u64 {
    let b = id.as_bytes();
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

/// Whether a trace is kept at `rate` (0.0 to 1.0): a function of the trace id alone, so
/// every service that uses the same rate makes the same decision for the same trace, with no
/// header of its own. It reads the id's last 32 bits: random in a UUIDv7, whereas the bits
/// before them may hold a counter that only increments within a millisecond (the `uuid`
/// crate's `now_v7` keeps one in 42 bits; RFC 9562's "method 1"), which would make the
/// traces started in one millisecond decide alike.
///
/// ```
/// let id = tower_opik::id::new_id();
/// assert!(tower_opik::id::sampled(id, 1.0));
/// assert!(!tower_opik::id::sampled(id, 0.0));
/// assert_eq!(tower_opik::id::sampled(id, 0.3), tower_opik::id::sampled(id, 0.3));
/// ```
pub fn sampled(trace_id: Uuid, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate.is_nan() || rate <= 0.0 {
        return false;
    }
    let b = trace_id.as_bytes();
    let random = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
    f64::from(random) < rate * 4_294_967_296.0
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

    #[test]
    fn sampling_keeps_the_share_asked_for() {
        // Minted in a burst: most within the same millisecond, where `now_v7` counts.
        let n = 20_000;
        let kept = (0..n).filter(|_| sampled(new_id(), 0.3)).count() as f64 / n as f64;
        assert!((0.28..0.32).contains(&kept), "{kept}");
        // Consecutive ids decide independently: runs are as short as for coin flips.
        let decisions: Vec<bool> = (0..n).map(|_| sampled(new_id(), 0.5)).collect();
        let changes = decisions.windows(2).filter(|w| w[0] != w[1]).count() as f64;
        assert!((0.45..0.55).contains(&(changes / n as f64)), "{changes}");
        assert!((0..1000).all(|_| sampled(new_id(), 1.0)));
        assert!((0..1000).all(|_| !sampled(new_id(), 0.0)));
    }

    fn dated(ms: u64) -> Uuid {
        uuid::Builder::from_unix_timestamp_millis(ms, &[1; 10]).into_uuid()
    }

    #[test]
    fn remote_ids_may_be_old_but_not_far_ahead() {
        let now = unix_millis(new_id());
        let skew = MAX_FUTURE_SKEW.as_millis() as u64;
        assert!(check_remote(dated(0)).is_ok(), "1970 is old, not wrong");
        assert!(check_remote(dated(now - 40 * 86_400_000)).is_ok());
        assert!(check_remote(dated(now + skew - 60_000)).is_ok());
        assert_eq!(
            check_remote(dated(now + skew + 60_000)),
            Err(RemoteIdError::InFuture)
        );
        assert_eq!(
            check_remote(dated(u64::MAX >> 16)),
            Err(RemoteIdError::InFuture)
        );
        assert_eq!(check_remote(Uuid::new_v4()), Err(RemoteIdError::NotUuidV7));
        assert_eq!(unix_millis(dated(1_234_567)), 1_234_567);
    }
}
