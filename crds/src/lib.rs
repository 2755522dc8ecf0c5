//! ModelServer API types.
