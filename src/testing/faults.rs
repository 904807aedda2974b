//! Fault injection: what the next ingest calls will meet, including the two faults that
//! last (a proxy's body-size limit, a rate limit for a while).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// One injected fault.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Answer this status and headers, store nothing.
    Fail(StatusCode, HeaderMap),
    /// Close the connection without an answer.
    Drop,
    /// Answer after a delay.
    Delay(Duration),
}

/// Faults to inject into the next ingest calls (span and trace batches), in order, plus an
/// optional delay on every call, a body-size limit (a proxy in front of Opik) and a rate
/// limit for a while. Shared: a clone controls the same LocalOpik.
///
/// An ingest call meets, in this order: the body limit (413), the rate limit (429), the
/// delay, then the next queued fault.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use http::{HeaderMap, HeaderValue, StatusCode};
/// let opik = tower_opik::testing::LocalOpik::start().await?;
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", HeaderValue::from_static("1"));
/// opik.faults().fail_next(1, StatusCode::TOO_MANY_REQUESTS, headers);
/// opik.faults().drop_next(1);
/// opik.faults().set_delay(Some(std::time::Duration::from_millis(100)));
/// assert_eq!(opik.faults().queued(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default)]
struct FaultState {
    queue: VecDeque<Fault>,
    delay: Option<Duration>,
    served: u64,
    body_limit: Option<usize>,
    /// Until when, and the wait to ask for.
    rate_limit: Option<(tokio::time::Instant, Duration)>,
    refused: u64,
}

/// An answer a lasting fault gives instead of the real one.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) message: &'static str,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` ingest calls answer `status` with `headers` and store nothing.
    ///
    /// ```
    /// # let faults = tower_opik::testing::Faults::default();
    /// faults.fail_next(2, http::StatusCode::SERVICE_UNAVAILABLE, http::HeaderMap::new());
    /// ```
    pub fn fail_next(&self, n: usize, status: StatusCode, headers: HeaderMap) {
        let mut state = self.lock();
        for _ in 0..n {
            state.queue.push_back(Fault::Fail(status, headers.clone()));
        }
    }

    /// The next `n` ingest calls have their connection closed without an answer (after the
    /// request was read): the client sees a transport error.
    ///
    /// ```
    /// # let faults = tower_opik::testing::Faults::default();
    /// faults.drop_next(1);
    /// ```
    pub fn drop_next(&self, n: usize) {
        let mut state = self.lock();
        state.queue.extend(std::iter::repeat_n(Fault::Drop, n));
    }

    /// The next `n` ingest calls are answered after `delay` (and stored then, even if the
    /// client gave up: a slow backend commits late, which is why batch writes are upserts).
    ///
    /// ```
    /// # let faults = tower_opik::testing::Faults::default();
    /// faults.delay_next(1, std::time::Duration::from_millis(50));
    /// ```
    pub fn delay_next(&self, n: usize, delay: Duration) {
        let mut state = self.lock();
        state
            .queue
            .extend(std::iter::repeat_n(Fault::Delay(delay), n));
    }

    /// Delays every ingest call (before any queued fault), or stops doing so with `None`.
    ///
    /// ```
    /// # let faults = tower_opik::testing::Faults::default();
    /// faults.set_delay(Some(std::time::Duration::from_secs(1)));
    /// faults.set_delay(None);
    /// ```
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// Refuses every ingest call whose body, as sent (before any gzip is undone, as a proxy
    /// sees it), is over `bytes`, with `413 Payload Too Large`, storing nothing: nginx's
    /// `client_max_body_size` (1 MiB by default) in front of Opik. `None` lifts the limit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// opik.faults().limit_body(Some(1024 * 1024)); // nginx's default
    /// opik.faults().limit_body(None);
    /// # Ok(()) }
    /// ```
    pub fn limit_body(&self, bytes: Option<usize>) {
        self.lock().body_limit = bytes;
    }

    /// Answers every ingest call `429 Too Many Requests` with `Retry-After: <retry_after>`
    /// (whole seconds, or decimal ones for a fraction) for the next `window`, measured on
    /// tokio's clock (so a test with a paused clock controls it), storing nothing. A new call
    /// replaces the previous window; `Duration::ZERO` ends it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// // Opik under load: "wait a second", for the next 20 seconds.
    /// opik.faults().rate_limit(Duration::from_secs(20), Duration::from_secs(1));
    /// opik.faults().rate_limit(Duration::ZERO, Duration::ZERO); // over
    /// assert_eq!(opik.faults().refused(), 0);
    /// # Ok(()) }
    /// ```
    pub fn rate_limit(&self, window: Duration, retry_after: Duration) {
        let until = tokio::time::Instant::now()
            .checked_add(window)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        self.lock().rate_limit = Some((until, retry_after));
    }

    /// Ingest calls refused by the body limit or the rate limit so far.
    ///
    /// ```
    /// assert_eq!(tower_opik::testing::Faults::default().refused(), 0);
    /// ```
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }

    /// Forgets queued faults, the delay, the body limit and the rate limit.
    ///
    /// ```
    /// # let faults = tower_opik::testing::Faults::default();
    /// faults.drop_next(3);
    /// faults.limit_body(Some(10));
    /// faults.clear();
    /// assert_eq!(faults.queued(), 0);
    /// ```
    pub fn clear(&self) {
        let mut state = self.lock();
        state.queue.clear();
        state.delay = None;
        state.body_limit = None;
        state.rate_limit = None;
    }

    /// The answer of a lasting fault (body limit, rate limit) to a call with a body of
    /// `wire_len` bytes, if one applies.
    pub(crate) fn refusal(&self, wire_len: usize) -> Option<Refusal> {
        let mut state = self.lock();
        let refusal = if state.body_limit.is_some_and(|limit| wire_len > limit) {
            Refusal {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                headers: HeaderMap::new(),
                message: "413 Request Entity Too Large (body over the proxy's limit)",
            }
        } else {
            let (until, wait) = state.rate_limit?;
            if tokio::time::Instant::now() >= until {
                state.rate_limit = None;
                return None;
            }
            let mut headers = HeaderMap::new();
            let value = if wait.subsec_nanos() == 0 {
                wait.as_secs().to_string()
            } else {
                format!("{:.3}", wait.as_secs_f64())
            };
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(http::header::RETRY_AFTER, value);
            }
            Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                headers,
                message: "rate limit exceeded",
            }
        };
        state.refused += 1;
        Some(refusal)
    }

    /// Faults still queued.
    ///
    /// ```
    /// assert_eq!(tower_opik::testing::Faults::default().queued(), 0);
    /// ```
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Faults served so far (queued ones that were used).
    ///
    /// ```
    /// assert_eq!(tower_opik::testing::Faults::default().served(), 0);
    /// ```
    pub fn served(&self) -> u64 {
        self.lock().served
    }

    /// The persistent delay and the next queued fault, if any, for one ingest call.
    pub(crate) fn next(&self) -> (Option<Duration>, Option<Fault>) {
        let mut state = self.lock();
        let fault = state.queue.pop_front();
        if fault.is_some() {
            state.served += 1;
        }
        (state.delay, fault)
    }
}
