//! When to try an export again, and how long to wait first.

use std::time::Duration;

/// Retry policy for transient export failures (429, 5xx, transport errors, export calls
/// that time out): jittered exponential backoff, `Retry-After` / `RateLimit-Reset` honoured
/// up to a cap, and a bound on both attempts and total time per batch.
///
/// A wait the server asks for (a rate limit: `Retry-After: 1`) is a time, not a failure: an
/// attempt answered with one is bounded by [`max_elapsed`](Self::max_elapsed) only, never
/// by [`max_attempts`](Self::max_attempts). A server wait shorter than
/// [`initial_backoff`](Self::initial_backoff) (`Retry-After: 0`, a date in the past) is no
/// usable hint: the attempt then backs off and counts like any other failure. All the time
/// arithmetic saturates: `Duration::MAX` is a valid value for every setting.
///
/// The defaults: 16 attempts, 500 ms doubling to at most 5 s (the export task holds the batch
/// meanwhile, so long waits mean drops at the queue bound), server-requested waits capped at
/// 60 s (as the Python SDK caps `Retry-After`), at most 2 minutes per batch, 30 s per export
/// call.
///
/// ```
/// use std::time::Duration;
/// use tower_opik::store::RetryPolicy;
/// let policy = RetryPolicy::default()
///     .max_attempts(3)
///     .initial_backoff(Duration::from_millis(100));
/// assert_eq!(policy.attempts(), 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    max_elapsed: Duration,
    attempt_timeout: Duration,
}

/// The wait before the next attempt, and whether the server set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wait {
    pub(crate) duration: Duration,
    /// The server asked for this wait (a rate limit): the attempt is bounded by time only.
    pub(crate) server_paced: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 16,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt per batch, even when the server asks to wait (no time
    /// budget either).
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RetryPolicy::none().attempts(), 1);
    /// ```
    pub fn none() -> Self {
        Self::default().max_attempts(1).max_elapsed(Duration::ZERO)
    }

    /// Attempts per batch, the first included (at least 1). Attempts answered with a
    /// server-requested wait (`Retry-After`, `RateLimit-Reset`) do not count: those are
    /// bounded by [`max_elapsed`](Self::max_elapsed).
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RetryPolicy::default().max_attempts(0).attempts(), 1);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait before the first retry; it doubles with each retry. Also the shortest
    /// server-requested wait honoured as one (a shorter `Retry-After` backs off instead).
    ///
    /// ```
    /// let p = tower_opik::store::RetryPolicy::default().initial_backoff(std::time::Duration::from_millis(10));
    /// # let _ = p;
    /// ```
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest computed wait between two attempts.
    ///
    /// ```
    /// let p = tower_opik::store::RetryPolicy::default().max_backoff(std::time::Duration::from_secs(5));
    /// # let _ = p;
    /// ```
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The longest wait the backend may ask for with `Retry-After` or `RateLimit-Reset`.
    ///
    /// ```
    /// let p = tower_opik::store::RetryPolicy::default().max_retry_after(std::time::Duration::from_secs(10));
    /// # let _ = p;
    /// ```
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// The longest time spent on one batch, waits included, before it is given up: the
    /// bound on a rate limit (a batch the server keeps asking to wait is given up when the
    /// next wait would end past it).
    ///
    /// ```
    /// let p = tower_opik::store::RetryPolicy::default().max_elapsed(std::time::Duration::from_secs(30));
    /// # let _ = p;
    /// ```
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = limit;
        self
    }

    /// The longest one export call may take, whatever the exporter (a custom
    /// [`Exporter`](crate::store::Exporter) that never returns included): a call still
    /// running then is abandoned and counts as a transient failure, retried like a 503.
    /// Keep it above the exporter's own timeout (10 s for the REST exporter, see
    /// [`request_timeout`](crate::store::SpanStoreBuilder::request_timeout)). Default 30 s.
    ///
    /// ```
    /// let p = tower_opik::store::RetryPolicy::default().attempt_timeout(std::time::Duration::from_secs(20));
    /// assert_eq!(p.export_timeout(), std::time::Duration::from_secs(20));
    /// ```
    pub fn attempt_timeout(mut self, limit: Duration) -> Self {
        self.attempt_timeout = limit;
        self
    }

    /// The time limit of one export call (see [`attempt_timeout`](Self::attempt_timeout)).
    ///
    /// ```
    /// let p = tower_opik::store::RetryPolicy::default();
    /// assert_eq!(p.export_timeout(), std::time::Duration::from_secs(30));
    /// ```
    pub fn export_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    /// Attempts per batch.
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RetryPolicy::default().attempts(), 16);
    /// ```
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before the next attempt, given the failures counted so far (`retry`, 0 for
    /// the first) and what the backend asked for: the backend's wait (capped at
    /// `max_retry_after`) when it gave one of at least `initial_backoff`, otherwise
    /// exponential backoff with "equal jitter" (between half and all of the exponential
    /// value).
    pub(crate) fn wait(&self, retry: u32, asked: Option<Duration>) -> Wait {
        if let Some(asked) = asked.filter(|a| *a >= self.initial_backoff && !a.is_zero()) {
            return Wait {
                duration: asked.min(self.max_retry_after),
                server_paced: true,
            };
        }
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max_backoff);
        let half = exp / 2;
        let jitter = Duration::try_from_secs_f64(half.as_secs_f64() * fastrand::f64())
            .unwrap_or(half)
            .min(half);
        Wait {
            duration: half.saturating_add(jitter),
            server_paced: false,
        }
    }

    /// Whether another attempt fits: `failures` counted so far (server-paced ones are not),
    /// `spent` on this batch, and the wait that would come first.
    pub(crate) fn allows(&self, failures: u32, spent: Duration, wait: Duration) -> bool {
        failures < self.max_attempts && spent.saturating_add(wait) <= self.max_elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(700));
        for _ in 0..100 {
            let d0 = p.wait(0, None).duration;
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d2 = p.wait(2, None).duration;
            assert!(d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(400));
            let d9 = p.wait(40, None).duration;
            assert!(d9 >= Duration::from_millis(350) && d9 <= Duration::from_millis(700));
        }
    }

    #[test]
    fn server_waits_are_honoured_up_to_the_cap() {
        let p = RetryPolicy::default().max_retry_after(Duration::from_secs(60));
        let asked = |secs| p.wait(0, Some(Duration::from_secs(secs)));
        assert_eq!(asked(3).duration, Duration::from_secs(3));
        assert!(asked(3).server_paced);
        assert_eq!(asked(3600).duration, Duration::from_secs(60));
    }

    #[test]
    fn a_zero_or_past_server_wait_backs_off_and_counts() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(100));
        for asked in [Some(Duration::ZERO), Some(Duration::from_millis(1))] {
            let w = p.wait(0, asked);
            assert!(!w.server_paced, "{asked:?}");
            assert!(w.duration >= Duration::from_millis(50), "{asked:?}: {w:?}");
        }
        // Even with no backoff configured, a zero wait is never server-paced.
        let p = RetryPolicy::default().initial_backoff(Duration::ZERO);
        assert!(!p.wait(0, Some(Duration::ZERO)).server_paced);
    }

    #[test]
    fn extreme_settings_saturate_instead_of_overflowing() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::MAX)
            .max_backoff(Duration::MAX)
            .max_retry_after(Duration::MAX)
            .max_elapsed(Duration::MAX);
        for retry in [0, 1, 31, u32::MAX] {
            let w = p.wait(retry, None).duration;
            assert!(w >= Duration::MAX / 2, "{w:?}");
            assert!(p.allows(1, Duration::MAX, w));
        }
        assert_eq!(p.wait(0, Some(Duration::MAX)).duration, Duration::MAX);
        let p = RetryPolicy::default().max_elapsed(Duration::from_secs(1));
        assert!(!p.allows(1, Duration::MAX, Duration::MAX));
    }

    #[test]
    fn attempts_and_time_are_bounded() {
        let p = RetryPolicy::default()
            .max_attempts(3)
            .max_elapsed(Duration::from_secs(10));
        assert!(p.allows(2, Duration::ZERO, Duration::ZERO));
        assert!(!p.allows(3, Duration::ZERO, Duration::ZERO));
        assert!(!p.allows(1, Duration::from_secs(9), Duration::from_secs(2)));
    }
}
