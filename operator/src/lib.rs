//! The ModelServer operator library.
