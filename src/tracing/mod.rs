//! `tracing` spans as Opik spans (feature `tracing`): a `tracing_subscriber` layer,
//! [`OpikTracingLayer`], that mirrors `tracing` spans (`#[tracing::instrument]`,
//! `info_span!`, and the GenAI spans that LLM libraries such as `genai` with its `otel`
//! feature emit) into the same span tree as [`current_span`](crate::current_span), sent
//! through the same [`SpanStore`] in the same batches. It maps fields; it never owns export.
//!
//! # Which spans
//!
//! | [`Mirror`] | mirrored spans |
//! |---|---|
//! | [`Mirror::GenAi`] (default) | those whose callsite declares a `gen_ai.*` or `opik.*` field (`Empty` ones count) |
//! | [`Mirror::All`] | every span the layer sees: select them with `tracing-subscriber`'s per-layer filters (`Targets`, `filter_fn`, `EnvFilter`, ...) |
//!
//! With `Mirror::All`, [`GenAiSpans`] is the GenAI selection as a filter, to combine:
//! `.with_filter(GenAiSpans.or(targets))` mirrors both. A filter narrows either mode:
//! `OpikTracingLayer::new().with_filter(targets)` mirrors the GenAI spans of those targets.
//!
//! # Where they go
//!
//! A mirrored span's parent is, in order:
//!
//! 1. its nearest mirrored `tracing` ancestor (explicit `parent: &span` or contextual; spans
//!    in between that are not mirrored are skipped), unless the current Opik span was set
//!    after that ancestor was entered on this thread (a span opened with
//!    `current_span().child(..)` and made current with `in_span`/`in_scope` inside it):
//!    then that span;
//! 2. else the current Opik span: the [`OpikLayer`](crate::OpikLayer) request span, an
//!    [`in_span`](crate::OpikFutureExt::in_span) future, a
//!    [`DistributedScope`](crate::DistributedScope);
//! 3. else, only when configured ([`OpikTracingLayerBuilder::start_traces_in`]), the root of
//!    a new trace. Otherwise the span is not mirrored.
//!
//! An explicit root (`parent: None`) skips 1 and 2. Entering a mirrored span makes its Opik
//! span the current one (so spans opened with the Opik API inside it nest under it) and
//! exiting restores the previous one, per thread. `follows_from` links are kept in the
//! metadata (`tracing.follows_from`: the Opik span and trace ids, at most 16), as Opik has no
//! links. The span starts when the `tracing` span is created and ends when it closes (not
//! per enter); a span opened in a task and closed in another is one span.
//!
//! # Field mapping
//!
//! Fields count whenever they are recorded: at creation or later with `span.record(..)`
//! (declared `field::Empty`). The names follow the OpenTelemetry GenAI semantic conventions
//! and Opik's backend, which maps the same attributes when it ingests OTLP
//! (`apps/opik-backend/src/main/java/com/comet/opik/domain/mapping/otel/GenAIMappingRules.java`,
//! usage names in `.../domain/mapping/OpenTelemetryMappingUtils.java`).
//!
//! | `tracing` field | Opik span |
//! |---|---|
//! | `gen_ai.request.model`, `gen_ai.response.model` | `model` (the response's wins) |
//! | `gen_ai.provider.name`, else `gen_ai.system` | `provider`, normalised for Opik's cost lookup: `aws.bedrock` → `bedrock`, `gcp.vertex_ai` → `google_vertexai` (`anthropic_vertexai` for a Claude model), `gcp.gemini` → `google_ai`, `az.ai.openai` → `azure`, `mistral_ai` → `mistral`, `x_ai` → `xai`; `google` by `server.address` |
//! | `gen_ai.usage.input_tokens` / `output_tokens` | `usage.prompt_tokens` / `completion_tokens` |
//! | `gen_ai.usage.total_tokens` | `usage.total_tokens`, computed as prompt + completion when absent |
//! | `gen_ai.usage.<other>` | `usage.<other>` (a value that is no count: metadata) |
//! | `gen_ai.input.messages` (any `gen_ai.input.<k>`), `gen_ai.prompt`, `gen_ai.system_instructions` | `input.messages` (`input.<k>`), `input.prompt`, `input.system_instructions` |
//! | `gen_ai.output.messages` (any `gen_ai.output.<k>` but `type`), `gen_ai.completion` | `output.messages` (`output.<k>`), `output.completion` |
//! | `gen_ai.conversation.id`, `opik.thread_id` | the trace's `thread_id` when this span started the trace, else metadata `gen_ai.conversation.id` |
//! | `gen_ai.operation.name` | metadata; and the type: `chat`, `text_completion`, `generate_content`, `embeddings` → `llm`, `execute_tool` → `tool` |
//! | `opik.type` | the type (`general`, `llm`, `tool`, `guardrail`); wins over the above |
//! | (none of those, but a model, provider or usage) | type `llm` |
//! | `opik.name`, else `otel.name` | the span's name (else the `tracing` span's name) |
//! | `opik.tags` | tags (a JSON array or a comma-separated list) |
//! | `opik.input`, `opik.output` | merged into `input`, `output` (an object's keys; another value under `input`/`output`) |
//! | `opik.metadata.<k>`, `opik.metadata` (an object) | `metadata.<k>` |
//! | `error` (`true`, a message, `%e`, `&e as &dyn Error`), `error.type`, `error.message`, `exception.type` / `.message` / `.stacktrace`, `otel.status_code = "error"` with `otel.status_message` | `error_info` |
//! | an `ERROR`-level event in the span itself (as `#[instrument(err)]` emits) | `error_info` (type: its `error.type`/`exception.type` or `Error`; message: its `error` field or message); one in an unmirrored descendant stays among the events |
//! | other events in the span or in its unmirrored descendants | metadata `tracing.events`: `{time, level, target, message, fields}`, at most [`max_events`](OpikTracingLayerBuilder::max_events) (more are counted in `tracing.events_dropped`) |
//! | any other field (`gen_ai.*` ones such as `gen_ai.request.temperature`, `gen_ai.response.finish_reasons`, `gen_ai.tool.*`, `gen_ai.output.type`, `server.address`, your own) | metadata under its own name; never input |
//! | `code.*`, `thread.*`, `log.*`, `busy_ns`, `idle_ns`, `otel.kind` | never sent |
//!
//! Strings that hold JSON (`gen_ai.input.messages` is a JSON string in the conventions) are
//! parsed for `gen_ai.*` and `opik.*` fields; a string that does not parse is kept as a
//! string. The values gathered are written when the span closes, over what the Opik API may
//! have set on the same span.
//!
//! # Cost
//!
//! Whether a callsite declares GenAI or `opik.*` fields is cached per callsite. A span the
//! layer does not mirror then costs one registry lookup in each of `on_enter`, `on_record`
//! and `on_close` (about 0.1 µs a span in `benches/tracing_layer.rs`), and an event outside
//! any entered mirrored span a thread-local check. A mirrored GenAI span costs about as many
//! instructions on its thread as tracing-opentelemetry's for the same span; the JSON
//! encoding happens in the store's background task (BENCHMARKS.md, section 6).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower_opik::tracing::OpikTracingLayer;
//! use tower_opik::{OpikFutureExt, SpanStore};
//! use tracing_subscriber::prelude::*;
//!
//! let store = SpanStore::disabled(); // SpanStore::from_env()? in a real service
//! let _guard = tracing_subscriber::registry()
//!     .with(OpikTracingLayer::new())
//!     .set_default(); // .init() in a real service
//!
//! let request = store.root_span("POST /chat"); // what OpikLayer opens for a request
//! async {
//!     // genai, rig, ... emit spans like this one: it becomes an `llm` child of the request.
//!     let llm = tracing::info_span!(
//!         "chat",
//!         "gen_ai.operation.name" = "chat",
//!         "gen_ai.provider.name" = "openai",
//!         "gen_ai.request.model" = "gpt-4o",
//!         "gen_ai.usage.input_tokens" = tracing::field::Empty,
//!     );
//!     llm.record("gen_ai.usage.input_tokens", 12);
//! }
//! .in_span(request.clone())
//! .await;
//! request.end();
//! # }
//! ```

mod apply;
mod fields;
mod filter;
mod layer;
mod provider;
mod stack;
mod value;

pub use filter::GenAiSpans;
pub use layer::OpikTracingLayer;

use crate::store::SpanStore;

/// Which spans an [`OpikTracingLayer`] mirrors. Default: [`Mirror::GenAi`].
///
/// ```
/// use tower_opik::tracing::Mirror;
/// assert_eq!(Mirror::default(), Mirror::GenAi);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mirror {
    /// The spans whose callsite declares a `gen_ai.*` or `opik.*` field: LLM libraries'
    /// GenAI spans and the spans you mark with `opik.*` fields. Every other span costs next
    /// to nothing.
    #[default]
    GenAi,
    /// Every span the layer sees: choose them with a per-layer filter
    /// (`layer.with_filter(Targets::new().with_target("my_app", Level::INFO))`,
    /// `EnvFilter`, `filter_fn`, [`GenAiSpans`]`.or(..)`). Without a filter, every span of
    /// the process that has an Opik parent.
    All,
}

/// Where spans with no Opik parent go.
#[derive(Clone, Debug, Default)]
pub(crate) enum NewTraces {
    /// Nowhere: they are not mirrored.
    #[default]
    Off,
    /// A new trace in this store.
    In(SpanStore),
    /// A new trace in [`SpanStore::global`], when one is set.
    InGlobal,
}

/// Builds an [`OpikTracingLayer`].
///
/// | option | default |
/// |---|---|
/// | [`mirror`](Self::mirror) | [`Mirror::GenAi`] |
/// | [`start_traces_in`](Self::start_traces_in) / [`start_traces_in_global_store`](Self::start_traces_in_global_store) | off: a span with no Opik parent is not mirrored |
/// | [`max_events`](Self::max_events) | 32 events per span in metadata |
///
/// ```
/// use tower_opik::tracing::{Mirror, OpikTracingLayer};
/// let layer = OpikTracingLayer::builder()
///     .mirror(Mirror::All)
///     .start_traces_in_global_store()
///     .max_events(8)
///     .build();
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct OpikTracingLayerBuilder {
    mirror: Mirror,
    new_traces: NewTraces,
    max_events: usize,
}

impl Default for OpikTracingLayerBuilder {
    fn default() -> Self {
        Self {
            mirror: Mirror::GenAi,
            new_traces: NewTraces::Off,
            max_events: 32,
        }
    }
}

impl OpikTracingLayer {
    /// The layer with the defaults: GenAI and `opik.*` spans, under the current Opik span,
    /// no new traces.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(tower_opik::tracing::OpikTracingLayer::new());
    /// # let _ = subscriber;
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder (see [`OpikTracingLayerBuilder`] for the defaults).
    ///
    /// ```
    /// let builder = tower_opik::tracing::OpikTracingLayer::builder();
    /// # let _ = builder;
    /// ```
    pub fn builder() -> OpikTracingLayerBuilder {
        OpikTracingLayerBuilder::default()
    }
}

impl Default for OpikTracingLayer {
    /// [`OpikTracingLayer::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl OpikTracingLayerBuilder {
    /// Which spans to mirror.
    ///
    /// ```
    /// use tower_opik::tracing::{Mirror, OpikTracingLayer};
    /// let b = OpikTracingLayer::builder().mirror(Mirror::All);
    /// # let _ = b;
    /// ```
    pub fn mirror(mut self, mirror: Mirror) -> Self {
        self.mirror = mirror;
        self
    }

    /// A mirrored span with no Opik parent (no mirrored ancestor, no current Opik span)
    /// starts a new trace in `store`; this service then writes the trace record.
    ///
    /// ```
    /// let store = tower_opik::SpanStore::disabled();
    /// let b = tower_opik::tracing::OpikTracingLayer::builder().start_traces_in(store);
    /// # let _ = b;
    /// ```
    pub fn start_traces_in(mut self, store: SpanStore) -> Self {
        self.new_traces = NewTraces::In(store);
        self
    }

    /// As [`start_traces_in`](Self::start_traces_in), in the store that
    /// [`SpanStore::set_global`] installed, looked up when such a span starts (none set:
    /// not mirrored).
    ///
    /// ```
    /// let b = tower_opik::tracing::OpikTracingLayer::builder().start_traces_in_global_store();
    /// # let _ = b;
    /// ```
    pub fn start_traces_in_global_store(mut self) -> Self {
        self.new_traces = NewTraces::InGlobal;
        self
    }

    /// How many events a span keeps in its metadata (`tracing.events`); later ones are
    /// counted in `tracing.events_dropped`. 0 keeps none (an `ERROR` event still sets the
    /// span's error).
    ///
    /// ```
    /// let b = tower_opik::tracing::OpikTracingLayer::builder().max_events(0);
    /// # let _ = b;
    /// ```
    pub fn max_events(mut self, max: usize) -> Self {
        self.max_events = max;
        self
    }

    /// The layer. Add it to a `tracing_subscriber::registry()` (it needs the registry's
    /// span store: `LookupSpan`).
    ///
    /// ```
    /// let layer = tower_opik::tracing::OpikTracingLayer::builder().build();
    /// # let _ = layer;
    /// ```
    pub fn build(self) -> OpikTracingLayer {
        OpikTracingLayer::from_parts(self.mirror, self.new_traces, self.max_events)
    }
}
