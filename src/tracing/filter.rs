//! Which spans carry GenAI or `opik.*` fields, decided from the callsite alone: `tracing`
//! declares every field a span may ever record (`field::Empty` included) at its callsite.

use std::sync::atomic::{AtomicUsize, Ordering};

use ::tracing::Metadata;
use ::tracing::subscriber::Interest;
use tracing_subscriber::layer::{Context, Filter};

/// Whether a span callsite declares a `gen_ai.*` or `opik.*` field. Asked on every
/// callback of every span, so the answer is cached per callsite in [`CACHE`]; a miss scans
/// the field names (a handful of string prefixes), no allocation.
pub(super) fn declares_genai(metadata: &Metadata<'_>) -> bool {
    let key = std::ptr::from_ref(metadata) as usize;
    let slot = &CACHE[(key >> 4).wrapping_mul(0x9E37_79B9) % CACHE.len()];
    let cached = slot.load(Ordering::Relaxed);
    if cached & !TAGS == key {
        return cached & GENAI != 0;
    }
    let genai = scan(metadata);
    slot.store(key | if genai { GENAI } else { OTHER }, Ordering::Relaxed);
    genai
}

fn scan(metadata: &Metadata<'_>) -> bool {
    metadata.fields().iter().any(|f| {
        let name = f.name();
        name.starts_with("gen_ai.") || name.starts_with("opik.")
    })
}

/// A direct-mapped cache of callsite answers: the `Metadata` address (aligned to 8, so its
/// two low bits are free) tagged with the answer. A slot shared by two callsites is
/// overwritten by the last one asked; a stale or torn read cannot happen (one word), a
/// collision only costs a scan. Metadata lives as long as its callsite (`'static` for the
/// macros), and a span's metadata outlives the span.
static CACHE: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
const GENAI: usize = 0b01;
const OTHER: usize = 0b10;
const TAGS: usize = GENAI | OTHER;

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
        metadata.is_event() || scan(metadata)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_answers_as_the_scan() {
        // The tags live in the address's two low bits.
        assert!(std::mem::align_of::<Metadata<'static>>() >= 4);
        let _subscriber = ::tracing::subscriber::set_default(tracing_subscriber::registry());
        let genai = ::tracing::info_span!("a", "gen_ai.system" = "openai");
        let opik = ::tracing::info_span!("b", "opik.type" = ::tracing::field::Empty);
        let plain = ::tracing::info_span!("c", x = 1);
        for _ in 0..3 {
            for (span, expected) in [(&genai, true), (&opik, true), (&plain, false)] {
                let metadata = span.metadata().expect("an enabled span");
                assert_eq!(declares_genai(metadata), expected);
            }
        }
    }
}
