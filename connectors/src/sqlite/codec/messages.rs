//! Error messages: what a value does not fit or was expected to be, with
//! long values shortened.

use std::fmt;

use planner::types::ColumnType;
use rusqlite::types::ValueRef;

use crate::error::ConnectorError;

// ---------------------------------------------------------------------------
// Error helpers
// ---------------------------------------------------------------------------

pub(super) fn does_not_fit(value: impl fmt::Display, target: &ColumnType) -> ConnectorError {
    ConnectorError::Value(format!("value {value} does not fit {target}"))
}

pub(super) fn mismatch(expected: &str, found: ValueRef<'_>) -> ConnectorError {
    ConnectorError::Value(format!("expected {expected}, found {}", Found(found)))
}

/// Longest prefix of a value quoted in an error message.
const PREVIEW_CHARS: usize = 60;

fn preview(s: &str) -> (&str, bool) {
    match s.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => (&s[..end], true),
        None => (s, false),
    }
}

/// A value shown as-is, shortened.
pub(super) struct Plain<'a>(pub(super) &'a str);

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match preview(self.0) {
            (p, false) => f.write_str(p),
            (p, true) => write!(f, "{p}…"),
        }
    }
}

/// A text shown quoted and escaped, shortened.
pub(super) struct Quoted<'a>(pub(super) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match preview(self.0) {
            (p, false) => write!(f, "{p:?}"),
            (p, true) => write!(f, "{p:?}… ({} characters)", self.0.chars().count()),
        }
    }
}

/// What a stored value is, for "found ..." messages.
struct Found<'a>(ValueRef<'a>);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ValueRef::Null => f.write_str("NULL"),
            ValueRef::Integer(i) => write!(f, "integer {i}"),
            ValueRef::Real(r) => write!(f, "real {r:?}"),
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => write!(f, "text {}", Quoted(s)),
                Err(_) => write!(f, "text that is not valid UTF-8 ({} bytes)", t.len()),
            },
            ValueRef::Blob(b) => write!(f, "a blob of {} bytes", b.len()),
        }
    }
}
