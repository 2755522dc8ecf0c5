//! `modelserver-sidecar`: placeholder until the sidecar lands.
fn main() {}
