//! Fault injection: what the next ingest calls will meet.

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
/// optional delay on every call. Shared: a clone controls the same LocalOpik.
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

    /// Forgets queued faults and the delay.
    ///
    /// ```
    /// # let faults = tower_opik::testing::Faults::default();
    /// faults.drop_next(3);
    /// faults.clear();
    /// assert_eq!(faults.queued(), 0);
    /// ```
    pub fn clear(&self) {
        let mut state = self.lock();
        state.queue.clear();
        state.delay = None;
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
