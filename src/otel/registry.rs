//! What an OTel span processor cannot read back: the Opik ids of OTel spans, by OTel span id.
//! Bounded: filled when a span is attached or starts in an attached subtree, emptied when it
//! ends; spans that never end are evicted oldest first.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};

use opentelemetry::trace::SpanId;
use uuid::Uuid;

use crate::warn::RateLimit;

/// The most OTel spans remembered at once.
pub(crate) const CAPACITY: usize = 65_536;

/// An OTel span's place in Opik.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpikIds {
    pub(crate) trace_id: Uuid,
    pub(crate) span_id: Uuid,
}

#[derive(Debug, Default)]
struct Registry {
    map: HashMap<SpanId, OpikIds>,
    order: VecDeque<SpanId>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
static EVICTION_WARNING: RateLimit = RateLimit::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn insert(otel: SpanId, ids: OpikIds) {
    let mut r = registry();
    while r.map.len() >= CAPACITY {
        let Some(oldest) = r.order.pop_front() else {
            break;
        };
        if r.map.remove(&oldest).is_some()
            && let Some(suppressed) = EVICTION_WARNING.check()
        {
            tracing::warn!(
                target: "tower_opik",
                suppressed,
                "OTel spans that never end: forgetting the oldest Opik ids ({CAPACITY} kept)"
            );
        }
    }
    if r.map.insert(otel, ids).is_none() {
        r.order.push_back(otel);
    }
    // Ended spans leave their key in `order`: compact now and then so it stays bounded.
    if r.order.len() > 2 * CAPACITY.max(r.map.len()) {
        let Registry { map, order } = &mut *r;
        order.retain(|id| map.contains_key(id));
    }
}

pub(crate) fn get(otel: SpanId) -> Option<OpikIds> {
    registry().map.get(&otel).copied()
}

pub(crate) fn remove(otel: SpanId) {
    let mut r = registry();
    r.map.remove(&otel);
    if r.order.len() > 2 * CAPACITY {
        let Registry { map, order } = &mut *r;
        order.retain(|id| map.contains_key(id));
    }
}

#[cfg(test)]
pub(crate) fn len() -> usize {
    registry().map.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_that_never_end_do_not_grow_memory_past_the_bound() {
        let ids = OpikIds {
            trace_id: crate::id::new_id(),
            span_id: crate::id::new_id(),
        };
        let span = |i: u64| SpanId::from_bytes((i + 1).to_be_bytes());
        for i in 0..(CAPACITY as u64 + 1000) {
            insert(span(i), ids);
        }
        assert_eq!(len(), CAPACITY);
        assert_eq!(get(span(0)), None, "the oldest were forgotten");
        assert_eq!(get(span(CAPACITY as u64 + 999)), Some(ids));
        for i in 0..(CAPACITY as u64 + 1000) {
            remove(span(i));
        }
        assert_eq!(len(), 0);
        assert!(registry().order.len() <= 2 * CAPACITY);
    }
}
