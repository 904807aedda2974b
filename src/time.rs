//! Timestamps as Opik wants them: RFC 3339, UTC, microseconds, `Z` (Java's `Instant`, which
//! Opik's backend parses them into, and the Python SDK's `datetime_helpers`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time with microsecond precision, serialized as `2026-11-28T22:57:56.168246Z`.
///
/// ```
/// use tower_opik::Timestamp;
/// let t = Timestamp::from_unix_micros(1_795_906_676_168_246);
/// assert_eq!(t.to_string(), "2026-11-28T22:57:56.168246Z");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    micros: i64,
}

impl Timestamp {
    /// The current time.
    ///
    /// ```
    /// let before = tower_opik::Timestamp::now();
    /// assert!(tower_opik::Timestamp::now() >= before);
    /// ```
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// A timestamp from microseconds since the Unix epoch.
    ///
    /// ```
    /// assert_eq!(tower_opik::Timestamp::from_unix_micros(0).to_string(), "1970-01-01T00:00:00.000000Z");
    /// ```
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self { micros }
    }

    /// Microseconds since the Unix epoch.
    ///
    /// ```
    /// assert_eq!(tower_opik::Timestamp::from_unix_micros(42).unix_micros(), 42);
    /// ```
    pub const fn unix_micros(self) -> i64 {
        self.micros
    }

    /// The time elapsed from `earlier` to `self` (zero if `earlier` is later).
    ///
    /// ```
    /// use tower_opik::Timestamp;
    /// let a = Timestamp::from_unix_micros(1_000);
    /// let b = Timestamp::from_unix_micros(3_500);
    /// assert_eq!(b.duration_since(a).as_micros(), 2_500);
    /// assert!(a.duration_since(b).is_zero());
    /// ```
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros).max(0) as u64)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let micros = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Self { micros }
    }
}

impl Timestamp {
    /// The RFC 3339 text, without going through `core::fmt`: export formats two or three
    /// of these per record, and `write!` made timestamps half of the encoding time. `None`
    /// for years outside 0000–9999, which [`Display`](std::fmt::Display) handles.
    pub(crate) fn rfc3339(self) -> Option<[u8; 27]> {
        let secs = self.micros.div_euclid(1_000_000);
        let frac = self.micros.rem_euclid(1_000_000) as u32;
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let y = u32::try_from(y).ok().filter(|y| *y <= 9999)?;
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, m);
        put(8, 2, d);
        put(11, 2, sod / 3600);
        put(14, 2, sod % 3600 / 60);
        put(17, 2, sod % 60);
        put(20, 6, frac);
        Some(out)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(text) = self.rfc3339()
            && let Ok(text) = std::str::from_utf8(&text)
        {
            return f.write_str(text);
        }
        self.write_any_year(f)
    }
}

impl Timestamp {
    /// Any year, through `core::fmt` (the fast path's fallback, and its reference in tests).
    fn write_any_year(self, f: &mut impl std::fmt::Write) -> std::fmt::Result {
        let secs = self.micros.div_euclid(1_000_000);
        let frac = self.micros.rem_euclid(1_000_000);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339() {
            Some(text) => match std::str::from_utf8(&text) {
                Ok(text) => s.serialize_str(text),
                Err(_) => s.collect_str(self),
            },
            None => s.collect_str(self),
        }
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
            (951_782_400_000_000, "2000-02-29T00:00:00.000000Z"),
            (1_795_906_676_168_246, "2026-11-28T22:57:56.168246Z"),
            (4_102_444_799_999_999, "2099-12-31T23:59:59.999999Z"),
        ];
        for (micros, text) in cases {
            assert_eq!(Timestamp::from_unix_micros(micros).to_string(), text);
        }
    }

    /// The `core::fmt` rendering the fast path replaces, as the reference.
    fn reference(micros: i64) -> String {
        let mut text = String::new();
        Timestamp::from_unix_micros(micros)
            .write_any_year(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn the_fast_path_matches_the_reference_everywhere() {
        let year_10000 = 253_402_300_800_000_000i64; // 10000-01-01T00:00:00Z
        let mut cases = vec![
            0,
            -1,
            -62_167_219_200_000_000, // 0000-01-01T00:00:00Z
            -62_167_219_200_000_001, // one microsecond before year 0
            year_10000 - 1,
            year_10000,
            i64::MAX,
            i64::MIN,
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        cases.extend((0..20_000).map(|_| rng.i64(-70_000_000_000_000_000..year_10000 + 1_000)));
        for micros in cases {
            let t = Timestamp::from_unix_micros(micros);
            let expected = reference(micros);
            assert_eq!(t.to_string(), expected, "{micros}");
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{expected}\""),
                "{micros}"
            );
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips_through_the_calendar() {
        // Compare with a naive day counter from 1970 forward.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn serializes_as_a_json_string() {
        let t = Timestamp::from_unix_micros(1);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"1970-01-01T00:00:00.000001Z\""
        );
    }
}
