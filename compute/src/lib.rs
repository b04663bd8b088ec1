//! Placeholder while the crate is wired in.
