#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod classify;
pub mod client;
pub mod config;
pub mod context;
mod error;
mod grpc;
pub mod headers;
pub mod id;
#[cfg(feature = "otel")]
pub mod otel;
pub mod record;
mod scope;
pub mod stream {
    //! Streamed LLM answers as spans: [`Span::track_stream`](crate::Span::track_stream)
    //! sets the time to first token, aggregates the chunks into the output, takes usage
    //! from the chunk that carries it, and ends the span when the stream ends or is
    //! dropped. To only run a stream inside a span, see
    //! [`OpikStreamExt`](crate::OpikStreamExt).
    pub use crate::context::tracked::{
        Aggregate, CANCELLED_KEY, CollectWith, StreamChunk, TextAggregator, TrackedStream,
    };
}
pub mod server;
pub mod span;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
#[cfg(feature = "tracing")]
pub mod tracing;
#[cfg(feature = "macros")]
mod track;
mod transport;
mod warn;

pub use config::OpikConfig;
pub use context::{OpikFutureExt, OpikStreamExt, current_span, spawn, update_current_trace};
pub use error::Error;
pub use headers::DistributedHeaders;
pub use record::{ErrorInfo, SpanType, Usage};
pub use scope::{DistributedScope, current_distributed_headers, inject_current};
pub use server::OpikLayer;
pub use span::{Span, TraceUpdate};
pub use store::SpanStore;
pub use time::Timestamp;
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use tower_opik_macros::track;
#[cfg(feature = "macros")]
#[doc(hidden)]
pub use track::__private;

/// The names most code needs, and none of the crate's module names: `use
/// tower_opik::prelude::*;`. (A glob of the crate root, `use tower_opik::*;`, also brings
/// the module `tower_opik::tracing`, which then shadows the `tracing` crate in
/// `tracing::info!`.)
///
/// ```
/// use tower_opik::prelude::*;
/// use tracing::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = SpanStore::disabled(); // SpanStore::from_env() in a real service
/// let request = store.root_span("answer");
/// async {
///     let llm = current_span().child_of_type("completion", SpanType::Llm);
///     info!("calling the model"); // `tracing`'s, unambiguous
///     llm.set_usage(Usage::tokens(12, 30));
///     llm.end();
/// }
/// .in_span(request.clone())
/// .await;
/// request.end();
/// # }
/// ```
pub mod prelude {
    #[cfg(feature = "macros")]
    pub use crate::track;
    pub use crate::{
        DistributedHeaders, ErrorInfo, OpikConfig, OpikFutureExt, OpikLayer, OpikStreamExt, Span,
        SpanStore, SpanType, TraceUpdate, Usage, current_span, spawn, update_current_trace,
    };
}
