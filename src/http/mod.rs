//! HTTP layer: listener and TLS, then routing by prefix to the protocol adapters.

mod ahead;
mod attempt;
mod conns;
pub mod health;
mod metered;
pub mod metrics;
mod origin;
mod router;
mod server;

pub use router::App;
pub use server::serve;
