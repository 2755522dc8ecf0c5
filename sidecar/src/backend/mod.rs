//! Where forwarded requests go.

pub mod pooled;
