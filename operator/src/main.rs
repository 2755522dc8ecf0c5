//! `modelserver-operator`.
fn main() {}
