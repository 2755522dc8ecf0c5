//! The request path to the model: backends and the pooled client, and the forwarding handler.

pub mod backend;
pub mod forward;
