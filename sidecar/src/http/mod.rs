//! The HTTP layer: the public and admin routers and the middleware they are built from. It knows
//! the model only through [`crate::backend::Backend`], so every behaviour here can be tested in
//! process against a fake backend (see `tests`).

pub mod admin;
pub mod auth;
pub mod cors;
pub mod docs;
pub mod forward;
pub mod grpc;
pub mod guarded;
pub mod health;
pub mod limits;
pub mod loopback;
pub mod observe;
pub mod public;
pub mod reply;
pub mod request_id;

#[cfg(test)]
mod tests;
