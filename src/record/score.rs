//! Feedback scores: Opik's `FeedbackScoreBatchItem`, sent to
//! `PUT v1/private/{spans,traces}/feedback-scores`.

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

/// A feedback score on a span or a trace: a name and a number, with an optional category and
/// reason (Opik's `FeedbackScoreBatchItem`; `source` is always `sdk`). Opik takes values
/// from -999999999.999999999 to 999999999.999999999 and a non-empty name; this crate sends
/// what it is given, so a score Opik refuses is counted as failed by the store, with the
/// reason logged. A value that is not finite cannot be JSON: it is counted as lost.
///
/// ```
/// use tower_opik::record::FeedbackScore;
/// let score = FeedbackScore::new("relevance", 0.8).category("good").reason("cites the docs");
/// assert_eq!((score.name(), score.value()), ("relevance", 0.8));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeedbackScore {
    name: String,
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    category_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl FeedbackScore {
    /// A score named `name` (Opik's `name`, non-empty) with `value` (Opik's `value`, a
    /// number within ±999999999.999999999; the scale is yours: 0 to 1 is usual), without
    /// category or reason.
    ///
    /// ```
    /// let s = tower_opik::record::FeedbackScore::new("thumbs_up", 1.0);
    /// assert_eq!(serde_json::to_value(&s).unwrap(), serde_json::json!({"name": "thumbs_up", "value": 1.0}));
    /// ```
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            value,
            category_name: None,
            reason: None,
        }
    }

    /// Its category (Opik's `category_name`: the label of a categorical score, whose value
    /// is then the category's number). None by default.
    ///
    /// ```
    /// let s = tower_opik::record::FeedbackScore::new("tone", 2.0).category("friendly");
    /// assert_eq!(serde_json::to_value(&s).unwrap()["category_name"], "friendly");
    /// ```
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category_name = Some(category.into());
        self
    }

    /// Why it was given (Opik's `reason`, shown next to the score). None by default.
    ///
    /// ```
    /// let s = tower_opik::record::FeedbackScore::new("safe", 0.0).reason("the answer quoted an API key");
    /// assert_eq!(serde_json::to_value(&s).unwrap()["reason"], "the answer quoted an API key");
    /// ```
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Its name.
    ///
    /// ```
    /// assert_eq!(tower_opik::record::FeedbackScore::new("a", 1.0).name(), "a");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its value.
    ///
    /// ```
    /// assert_eq!(tower_opik::record::FeedbackScore::new("a", 0.5).value(), 0.5);
    /// ```
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The bytes its strings hold (for the store's memory bound).
    pub(crate) fn byte_len(&self) -> usize {
        64 + self.name.len()
            + self.category_name.as_ref().map_or(0, String::len)
            + self.reason.as_ref().map_or(0, String::len)
    }
}

/// What a score is given to, and so where it is sent: a span's to
/// `PUT v1/private/spans/feedback-scores`, a trace's to `PUT v1/private/traces/feedback-scores`.
///
/// ```
/// use tower_opik::record::{FeedbackScore, ScoreRecord, ScoreTarget};
/// let store = tower_opik::SpanStore::disabled(); // SpanStore::from_env() in a service
/// # let trace_id = tower_opik::id::new_id();
/// // The user rated the whole conversation turn: score its trace.
/// store.record(ScoreRecord::new(ScoreTarget::Trace, trace_id, FeedbackScore::new("rating", 4.0)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScoreTarget {
    /// A span, by its id.
    Span,
    /// A trace, by its id.
    Trace,
}

/// A score given by id, at any time (a user's thumbs-up arriving later):
/// [`SpanStore::score_span`](crate::SpanStore::score_span) and
/// [`score_trace`](crate::SpanStore::score_trace) make these.
///
/// ```
/// use tower_opik::record::{FeedbackScore, ScoreRecord, ScoreTarget};
/// let r = ScoreRecord::new(ScoreTarget::Trace, tower_opik::id::new_id(), FeedbackScore::new("thumbs_up", 1.0));
/// assert_eq!(r.target, ScoreTarget::Trace);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ScoreRecord {
    /// A span or a trace.
    pub target: ScoreTarget,
    /// The span's or trace's id.
    pub id: Uuid,
    /// The project; `None` means Opik's "Default Project".
    pub project_name: Option<Arc<str>>,
    /// The score.
    pub score: FeedbackScore,
}

impl ScoreRecord {
    /// A score for the span or trace `id`, in the default project.
    ///
    /// ```
    /// use tower_opik::record::{FeedbackScore, ScoreRecord, ScoreTarget};
    /// let r = ScoreRecord::new(ScoreTarget::Span, tower_opik::id::new_id(), FeedbackScore::new("ok", 1.0));
    /// assert!(r.project_name.is_none());
    /// ```
    pub fn new(target: ScoreTarget, id: Uuid, score: FeedbackScore) -> Self {
        Self {
            target,
            id,
            project_name: None,
            score,
        }
    }
}

/// Writes one `FeedbackScoreBatchItem`.
pub(crate) fn encode(
    id: Uuid,
    project_name: Option<&str>,
    score: &FeedbackScore,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    #[derive(Serialize)]
    struct Item<'a> {
        id: Uuid,
        #[serde(skip_serializing_if = "Option::is_none")]
        project_name: Option<&'a str>,
        #[serde(flatten)]
        score: &'a FeedbackScore,
        source: &'static str,
    }
    if !score.value.is_finite() {
        return Err(serde::ser::Error::custom(format!(
            "score {:?} has a value that is not finite: {}",
            score.name, score.value
        )));
    }
    serde_json::to_writer(
        out,
        &Item {
            id,
            project_name,
            score,
            source: "sdk",
        },
    )
}
