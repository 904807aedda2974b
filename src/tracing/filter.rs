//! Which spans carry GenAI or `opik.*` fields, decided from the callsite alone: `tracing`
//! declares every field a span may ever record (`field::Empty` included) at its callsite.

use ::tracing::Metadata;
use ::tracing::subscriber::Interest;
use tracing_subscriber::layer::{Context, Filter};

/// Whether a span callsite declares a `gen_ai.*` or `opik.*` field. A scan of the field
/// names (a handful of string prefixes), no allocation.
pub(super) fn declares_genai(metadata: &Metadata<'_>) -> bool {
    metadata.fields().iter().any(|f| {
        let name = f.name();
        name.starts_with("gen_ai.") || name.starts_with("opik.")
    })
}

/// A per-layer [`Filter`] that enables the spans whose callsite declares a `gen_ai.*` or
/// `opik.*` field, and every event (the layer files events under the mirrored span they
/// happen in, and ignores the rest).
///
/// It is what [`Mirror::GenAi`](super::Mirror::GenAi) does, as a filter, so that it can be
/// combined with `tracing-subscriber`'s other filters: with
/// [`Mirror::All`](super::Mirror::All), `GenAiSpans.or(targets)` mirrors the GenAI spans
/// *and* the spans `targets` selects. Its decision is cached per callsite.
///
/// ```
/// use tower_opik::tracing::{GenAiSpans, Mirror, OpikTracingLayer};
/// use tracing_subscriber::filter::{FilterExt, Targets};
/// use tracing_subscriber::prelude::*;
///
/// let mine = Targets::new().with_target("my_app", tracing::Level::INFO);
/// let subscriber = tracing_subscriber::registry().with(
///     OpikTracingLayer::builder()
///         .mirror(Mirror::All)
///         .build()
///         .with_filter(GenAiSpans.or(mine)),
/// );
/// # let _ = subscriber;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GenAiSpans;

impl GenAiSpans {
    fn wants(metadata: &Metadata<'_>) -> bool {
        metadata.is_event() || declares_genai(metadata)
    }
}

impl<S> Filter<S> for GenAiSpans {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wants(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::wants(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}
