//! The server side: [`OpikLayer`] for axum routers and tonic servers.
//!
//! `OpikLayer` → [`OpikService`] → [`ResponseFuture`] → [`ResponseBody`], in the manner of
//! tower-http's trace layer.

mod body;
mod config;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod guard;
mod layer;
mod policy;
mod request;
mod service;

pub use body::ResponseBody;
#[cfg(feature = "axum")]
pub use extract::OpikSpan;
pub use future::ResponseFuture;
pub use layer::OpikLayer;
pub use policy::HeaderPolicy;
pub use request::RequestHead;
pub use service::OpikService;
