//! When to try an export again, and how long to wait first.

use std::time::Duration;

/// Retry policy for transient export failures (429, 5xx, transport errors): jittered
/// exponential backoff, `Retry-After` / `RateLimit-Reset` honoured up to a cap, and a bound
/// on both attempts and total time per batch.
///
/// The defaults: 16 attempts, 500 ms doubling to at most 5 s (the export task holds the batch
/// meanwhile, so long waits mean drops at the queue bound), server-requested waits capped at
/// 60 s (as the Python SDK caps `Retry-After`), at most 2 minutes per batch.
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
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 16,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt per batch.
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RetryPolicy::none().attempts(), 1);
    /// ```
    pub fn none() -> Self {
        Self::default().max_attempts(1)
    }

    /// Attempts per batch, the first included (at least 1).
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RetryPolicy::default().max_attempts(0).attempts(), 1);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait before the first retry; it doubles with each retry.
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

    /// The longest time spent on one batch, waits included, before it is given up.
    ///
    /// ```
    /// let p = tower_opik::store::RetryPolicy::default().max_elapsed(std::time::Duration::from_secs(30));
    /// # let _ = p;
    /// ```
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = limit;
        self
    }

    /// Attempts per batch.
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RetryPolicy::default().attempts(), 16);
    /// ```
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before retry number `retry` (0 for the first), given what the backend asked
    /// for: the backend's wait (capped) when it gave one, otherwise exponential backoff with
    /// "equal jitter" (between half and all of the exponential value).
    pub(crate) fn delay(&self, retry: u32, asked: Option<Duration>) -> Duration {
        if let Some(asked) = asked {
            return asked.min(self.max_retry_after);
        }
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max_backoff);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Whether another attempt fits: `attempts_made` so far, `spent` on this batch, and the
    /// wait that would come first.
    pub(crate) fn allows(&self, attempts_made: u32, spent: Duration, wait: Duration) -> bool {
        attempts_made < self.max_attempts && spent + wait <= self.max_elapsed
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
            let d0 = p.delay(0, None);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d2 = p.delay(2, None);
            assert!(d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(400));
            let d9 = p.delay(40, None);
            assert!(d9 >= Duration::from_millis(350) && d9 <= Duration::from_millis(700));
        }
    }

    #[test]
    fn server_waits_are_honoured_up_to_the_cap() {
        let p = RetryPolicy::default().max_retry_after(Duration::from_secs(60));
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
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
