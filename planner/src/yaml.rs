//! YAML parsing with errors that point at file:line:column and suggest the
//! closest valid field name, and with limits on what a file may make the
//! parser build.

use std::io::Read;
use std::path::Path;

use saphyr_parser::{Event, Parser};
use serde::de::DeserializeOwned;

use crate::error::PlannerError;

/// The largest config file read. Pipelines and datastores files are a few
/// KiB; this leaves room for generated ones with thousands of columns.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Alias uses (`*name`) in one file. serde_norway replays the anchored
/// node at every use, so each costs as much as the node it names.
pub const MAX_ALIASES: u64 = 10_000;
/// Bytes of scalar text in the document once every alias is expanded: no
/// more than one file without aliases could hold.
pub const MAX_EXPANDED_BYTES: u64 = MAX_FILE_BYTES as u64;
/// Nodes (scalars, sequences, mappings) in the document once every alias is
/// expanded. Each costs serde_norway an event and the deserializer a value,
/// some 200 bytes whatever its text (measured: a list of 1,000,000 one-digit
/// values peaked at 196 MB in `config validate`); a config file has a few
/// hundred, a generated one with 10,000 columns some 70,000.
pub const MAX_EXPANDED_NODES: u64 = 250_000;

/// Reads a config file, refusing one over `MAX_FILE_BYTES` before reading
/// it whole.
pub fn read_file(file: &Path) -> Result<String, PlannerError> {
    let io = |e: std::io::Error| PlannerError::Io {
        file: file.to_path_buf(),
        message: e.to_string(),
    };
    let f = std::fs::File::open(file).map_err(io)?;
    let mut text = String::new();
    // `take` rather than the file's length alone: a pipe or a growing file
    // reports a length that is not what a read returns.
    f.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() > MAX_FILE_BYTES {
        return Err(file_too_large(file));
    }
    Ok(text)
}

fn file_too_large(file: &Path) -> PlannerError {
    PlannerError::TooLarge {
        file: file.to_path_buf(),
        at: None,
        message: format!(
            "the file is larger than {} ({} bytes), the most a config file may be; check that this is the right file",
            mib(MAX_FILE_BYTES as u64),
            MAX_FILE_BYTES
        ),
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

/// Parses `text` (read from `file`) into `T`, turning serde's errors into
/// located, actionable messages. A text past the limits above is refused
/// before serde_norway sees it.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, PlannerError> {
    check_limits(file, text)?;
    // serde reports a value of the wrong type as soon as it meets it, before
    // the parser reaches a syntax error further on (an unclosed `[` is then
    // "invalid type: sequence"). Reading the whole document first puts the
    // syntax error, at its line and column, before any type error.
    serde_norway::from_str::<serde::de::IgnoredAny>(text).map_err(|e| located(file, e))?;
    serde_norway::from_str(text).map_err(|e| located(file, e))
}

/// A serde_norway error as a message at file:line:column.
fn located(file: &Path, e: serde_norway::Error) -> PlannerError {
    {
        let text = e.to_string();
        let outer = e.location().map(|l| (l.line(), l.column()));
        // An error raised by a nested deserializer (a connector reading its
        // own `connection:` type) is the inner error's text after a mark:
        // its own path and location, more precise than the outer ones.
        let (raw, (line, column)) = match text.split_once(NESTED_ERROR_MARK) {
            Some((_, inner)) => {
                let (inner, at) = split_first_location(inner);
                (
                    collapse_nested_paths(&inner),
                    at.or(outer).unwrap_or((1, 1)),
                )
            }
            None => (strip_location(&text), outer.unwrap_or((1, 1))),
        };
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
    }
}

/// Nodes and scalar bytes of a node with its aliases expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: u64,
    bytes: u64,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// Refuses a text over `MAX_FILE_BYTES`, with more than `MAX_ALIASES`
/// aliases, or whose aliases expand it past `MAX_EXPANDED_NODES` or
/// `MAX_EXPANDED_BYTES`.
///
/// One pass over the YAML events, in time linear in the text and memory in
/// its nesting depth plus its anchors: each anchored node's expanded size
/// is recorded when the node ends, and an alias adds that size to every
/// node enclosing it, so nested aliases ("billion laughs") are counted
/// without being expanded.
///
/// A text this parser cannot read is left to serde_norway, whose messages
/// the tests pin; both parse YAML 1.2, so such a text fails there too.
pub fn check_limits(file: &Path, text: &str) -> Result<(), PlannerError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(file_too_large(file));
    }
    let mut parser = Parser::new_from_str(text);
    // Open collections: their anchor id (0: none) and size so far.
    let mut open: Vec<(usize, Size)> = Vec::new();
    // Expanded size by anchor id; saphyr numbers anchors from 1 in order.
    let mut anchors: Vec<Size> = Vec::new();
    let mut total = Size::default();
    let mut aliases = 0u64;
    while let Some(event) = parser.next_event() {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let at = (span.start.line(), span.start.col() + 1);
        let too_large = |message: String| PlannerError::TooLarge {
            file: file.to_path_buf(),
            at: Some(at),
            message,
        };
        let (anchor, size, is_alias) = match event {
            Event::Scalar(value, _, anchor, _) => (
                anchor,
                Size {
                    nodes: 1,
                    bytes: value.len() as u64,
                },
                false,
            ),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, Size { nodes: 1, bytes: 0 }));
                total.add(Size { nodes: 1, bytes: 0 });
                check_total(total, false).map_err(too_large)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((anchor, size)) = open.pop() else {
                    continue;
                };
                // Its nodes are in `total` already, counted as they came.
                record_anchor(&mut anchors, anchor, size);
                if let Some((_, parent)) = open.last_mut() {
                    parent.add(size);
                }
                continue;
            }
            Event::Alias(id) => {
                aliases += 1;
                if aliases > MAX_ALIASES {
                    return Err(too_large(format!(
                        "more than {} aliases; write the values out or use fewer aliases",
                        thousands(MAX_ALIASES)
                    )));
                }
                // An alias to a node still open (a recursive one) counts as
                // one node; serde_norway refuses it anyway.
                let size = anchors
                    .get(id)
                    .copied()
                    .filter(|s| s.nodes > 0)
                    .unwrap_or(Size { nodes: 1, bytes: 0 });
                (0, size, true)
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => continue,
        };
        record_anchor(&mut anchors, anchor, size);
        if let Some((_, parent)) = open.last_mut() {
            parent.add(size);
        }
        total.add(size);
        check_total(total, is_alias).map_err(too_large)?;
    }
    Ok(())
}

fn record_anchor(anchors: &mut Vec<Size>, anchor: usize, size: Size) {
    if anchor == 0 {
        return;
    }
    if anchors.len() <= anchor {
        anchors.resize(anchor + 1, Size::default());
    }
    anchors[anchor] = size;
}

/// Why `total` is past a limit, if it is.
fn check_total(total: Size, at_alias: bool) -> Result<(), String> {
    let what = if total.nodes > MAX_EXPANDED_NODES {
        format!("{} values", thousands(MAX_EXPANDED_NODES))
    } else if total.bytes > MAX_EXPANDED_BYTES {
        format!("{} of text", mib(MAX_EXPANDED_BYTES))
    } else {
        return Ok(());
    };
    Err(if at_alias {
        format!("this alias expands the document to more than {what}; write the values out or use fewer aliases")
    } else {
        format!("the document has more than {what}, more than a config file needs; check that this is the right file")
    })
}

/// `10000` → `10,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// serde_norway appends " at line L column C"; we print the location ourselves.
/// What follows it (libyaml's context, e.g. ", while scanning a quoted scalar
/// at line 4 column 11", which says where the broken construct began) is kept.
/// Marks the start of a nested deserializer's error in the error that
/// wraps it (see `located`).
pub const NESTED_ERROR_MARK: &str = "\u{2}nested error: ";

/// `text` up to its first ` at line L column C` (the innermost error's
/// location; each wrapping deserializer appends its own), and that location.
fn split_first_location(text: &str) -> (String, Option<(usize, usize)>) {
    let Some(at) = text.find(" at line ") else {
        return (text.to_string(), None);
    };
    let tail = &text[at + " at line ".len()..];
    let location = tail.split_once(" column ").and_then(|(line, rest)| {
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((line.parse().ok()?, column.parse().ok()?))
    });
    (text[..at].to_string(), location)
}

/// `a: a.b: message` → `a.b: message`: each wrapping deserializer puts its
/// path before the inner error's, which already holds it.
fn collapse_nested_paths(message: &str) -> String {
    let is_path = |p: &str| !p.is_empty() && !p.contains(' ');
    let mut parts: Vec<&str> = message.split(": ").collect();
    let mut i = 0;
    while i + 1 < parts.len() {
        let (outer, inner) = (parts[i], parts[i + 1]);
        if is_path(outer)
            && is_path(inner)
            && (inner == outer || inner.starts_with(&format!("{outer}.")))
        {
            parts.remove(i);
        } else {
            i += 1;
        }
    }
    parts.join(": ")
}

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
    // Our own unknown-field errors say why after `; ` (a strategy field of
    // another type) instead of listing what is expected.
    if let Some(why) = rest.strip_prefix("; ") {
        return Some(format!("unknown field \"{field}\"{location}; {why}"));
    }
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

    fn limit_error(text: &str) -> String {
        match parse::<serde_norway::Value>(Path::new("p.yaml"), text) {
            Err(e @ PlannerError::TooLarge { .. }) => e.to_string(),
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn a_few_anchors_still_parse() {
        let v: serde_norway::Value = parse(
            Path::new("p.yaml"),
            "base: &b {type: postgres, port: 5432}\nitems: [&a x, *a, *b]\n",
        )
        .unwrap();
        assert_eq!(v["items"][1].as_str(), Some("x"));
        assert_eq!(v["items"][2]["port"].as_u64(), Some(5432));
    }

    #[test]
    fn too_many_aliases_are_refused_at_the_first_past_the_limit() {
        let text = format!("a: &a x\nb: [{}]\n", vec!["*a"; 10_001].join(", "));
        // The 10,001st alias: column 5 of line 2 plus 4 characters ("*a, ")
        // for each one before it.
        assert_eq!(
            limit_error(&text),
            format!(
                "p.yaml:2:{}: more than 10,000 aliases; write the values out or use fewer aliases",
                5 + 4 * 10_000
            )
        );
    }

    #[test]
    fn nested_aliases_are_counted_expanded_without_expanding_them() {
        // Ten levels of ten aliases each: 10^10 nodes expanded, from a few
        // hundred bytes. Refused at the alias that crosses the node limit:
        // l6's first (line 7), naming l5's 211,111 values.
        let mut text = String::from("l0: &l0 [x]\n");
        for i in 1..10 {
            text.push_str(&format!(
                "l{i}: &l{i} [{}]\n",
                vec![format!("*l{}", i - 1); 10].join(", ")
            ));
        }
        let started = std::time::Instant::now();
        let message = limit_error(&text);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            message.ends_with(
                ": this alias expands the document to more than 250,000 values; write the values out or use fewer aliases"
            ),
            "{message}"
        );
        assert!(message.starts_with("p.yaml:7:"), "{message}");
    }

    #[test]
    fn aliases_of_a_big_scalar_are_refused_by_expanded_text() {
        let big = "x".repeat(1_000_000);
        let text = format!("a: &a {big}\nb: [{}]\n", vec!["*a"; 20].join(", "));
        // The anchored node holds 1 MB; the tenth alias makes it 11 MB.
        assert_eq!(
            limit_error(&text),
            format!(
                "p.yaml:2:{}: this alias expands the document to more than 10 MiB of text; write the values out or use fewer aliases",
                5 + 4 * 9
            )
        );
    }

    #[test]
    fn a_text_over_the_file_limit_is_refused() {
        let text = format!("a: {}\n", "x".repeat(MAX_FILE_BYTES));
        assert_eq!(
            limit_error(&text),
            "p.yaml: the file is larger than 10 MiB (10485760 bytes), the most a config file may be; check that this is the right file"
        );
    }

    #[test]
    fn many_plain_values_are_refused_without_blaming_aliases() {
        let text = format!("a: [{}]\n", vec!["1"; 250_001].join(","));
        assert!(limit_error(&text).ends_with(
            ": the document has more than 250,000 values, more than a config file needs; check that this is the right file"
        ));
    }

    #[test]
    fn thousands_separates() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(250_000), "250,000");
    }

    #[test]
    fn closest_finds_typos() {
        assert_eq!(closest("naem", &["name", "description"]), Some("name"));
        assert_eq!(closest("zzz", &["name", "description"]), None);
    }
}
