//! LocalOpik, a store sending to it, and a `tracing` layer installed as the thread's
//! subscriber: the set-up of the `tracing` layer's tests.

use serde_json::Value;
use tower_opik::SpanStore;
use tower_opik::testing::LocalOpik;
use tracing_subscriber::Registry;
use tracing_subscriber::layer::Layer;
use tracing_subscriber::prelude::*;

use super::{FLUSH, store_for};

/// What [`env`] set up; the subscriber stays installed while this lives.
pub struct Env {
    pub opik: LocalOpik,
    pub store: SpanStore,
    _guard: tracing::subscriber::DefaultGuard,
}

/// LocalOpik, a store sending to it, and `layer` installed as this thread's subscriber.
pub async fn env(layer: impl Layer<Registry> + Send + Sync + 'static) -> Env {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let guard = tracing_subscriber::registry().with(layer).set_default();
    Env {
        opik,
        store,
        _guard: guard,
    }
}

impl Env {
    pub async fn flush(&self) {
        let report = self.store.flush(FLUSH).await;
        assert!(report.completed && report.stats.failed == 0, "{report}");
    }

    pub fn span(&self, name: &str) -> Value {
        let spans = self.opik.spans();
        let found: Vec<&Value> = spans.iter().filter(|s| s["name"] == name).collect();
        assert_eq!(found.len(), 1, "one span named {name}: {spans:#?}");
        found[0].clone()
    }

    pub fn has_span(&self, name: &str) -> bool {
        self.opik.spans().iter().any(|s| s["name"] == name)
    }
}
