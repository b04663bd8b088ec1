//! YAML parsing with errors that point at file:line:column and suggest the
//! closest valid field name.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::PlannerError;

/// Parses `text` (read from `file`) into `T`, turning serde's errors into
/// located, actionable messages.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, PlannerError> {
    serde_norway::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let raw = strip_location(&e.to_string());
        match unknown_field_message(&raw) {
            Some(message) => PlannerError::UnknownField {
                file: file.to_path_buf(),
                line,
                column,
                message,
            },
            None => PlannerError::Yaml {
                file: file.to_path_buf(),
                line,
                column,
                message: raw,
            },
        }
    })
}

/// serde_norway appends " at line L column C"; we print the location ourselves.
/// What follows it (libyaml's context, e.g. ", while scanning a quoted scalar
/// at line 4 column 11", which says where the broken construct began) is kept.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => {
            let rest = &message[i + " at line ".len()..];
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let rest = rest.strip_prefix(" column ").unwrap_or(rest);
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{}{rest}", &message[..i])
        }
        None => message.to_string(),
    }
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into
/// `unknown field "x"; did you mean "a"?` (or the list when nothing is close).
fn unknown_field_message(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (field, rest) = rest.split_once('`')?;
    let prefix = message.split("unknown field `").next().unwrap_or("");
    let prefix = prefix.trim_end_matches(": ").trim();
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let location = if prefix.is_empty() {
        String::new()
    } else {
        format!(" in {prefix}")
    };
    let hint = match closest(field, &expected) {
        Some(best) => format!("; did you mean \"{best}\"?"),
        None if expected.is_empty() => "; this place takes no fields".to_string(),
        None => format!("; valid fields: {}", expected.join(", ")),
    };
    Some(format!("unknown field \"{field}\"{location}{hint}"))
}

/// The candidate nearest to `word`, if it is near enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos() {
        assert_eq!(closest("naem", &["name", "description"]), Some("name"));
        assert_eq!(closest("zzz", &["name", "description"]), None);
    }
}
