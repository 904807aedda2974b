//! The client side: Opik headers on outgoing calls, through reqwest-middleware
//! ([`OpikMiddleware`], feature `reqwest-middleware`) or any tower client
//! ([`OpikClientLayer`]: hyper-util clients, tonic `Channel`s).

mod body;
mod layer;
mod options;
#[cfg(feature = "reqwest-middleware")]
mod reqwest;

pub use body::ClientResponseBody;
pub use layer::{ClientFuture, OpikClientLayer, OpikClientService};
pub use options::{ClientSpanName, Propagation};
#[cfg(feature = "reqwest-middleware")]
pub use reqwest::OpikMiddleware;
