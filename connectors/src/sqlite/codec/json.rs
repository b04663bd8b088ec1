//! JSON validation of text read into a `json` column ([`is_json`]).

/// RFC 8259 JSON validation without building a value. Iterative, so deep
/// nesting cannot overflow the stack; `stack` holds the open brackets' closers.
#[inline]
pub(super) fn is_json(s: &[u8], stack: &mut Vec<u8>) -> bool {
    stack.clear();
    let mut i = json_ws(s, 0);
    loop {
        // A value starts at `i`.
        match s.get(i) {
            Some(b'{') => {
                i = json_ws(s, i + 1);
                if s.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    stack.push(b'}');
                    match json_key(s, i) {
                        Some(next) => i = next,
                        None => return false,
                    }
                    continue;
                }
            }
            Some(b'[') => {
                i = json_ws(s, i + 1);
                if s.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    stack.push(b']');
                    continue;
                }
            }
            Some(b'"') => match json_string(s, i) {
                Some(next) => i = next,
                None => return false,
            },
            Some(b't') if s[i..].starts_with(b"true") => i += 4,
            Some(b'f') if s[i..].starts_with(b"false") => i += 5,
            Some(b'n') if s[i..].starts_with(b"null") => i += 4,
            Some(b'-' | b'0'..=b'9') => match json_number(s, i) {
                Some(next) => i = next,
                None => return false,
            },
            _ => return false,
        }
        // After a value: close containers until the next element starts.
        loop {
            i = json_ws(s, i);
            let Some(&close) = stack.last() else {
                return i == s.len();
            };
            match s.get(i) {
                Some(b',') => {
                    i = json_ws(s, i + 1);
                    if close == b'}' {
                        match json_key(s, i) {
                            Some(next) => i = next,
                            None => return false,
                        }
                    }
                    break;
                }
                Some(&c) if c == close => {
                    stack.pop();
                    i += 1;
                }
                _ => return false,
            }
        }
    }
}

fn json_ws(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `"key" :` and the whitespace after it; returns where the value starts.
fn json_key(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let i = json_ws(s, json_string(s, i)?);
    if s.get(i) != Some(&b':') {
        return None;
    }
    Some(json_ws(s, i + 1))
}

fn json_string(s: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *s.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' if s.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                _ => return None,
            },
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
}

fn json_number(s: &[u8], mut i: usize) -> Option<usize> {
    let digits = |s: &[u8], mut i: usize| {
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match s.get(i) {
        Some(b'0') => i + 1,
        Some(b'1'..=b'9') => digits(s, i)?,
        _ => return None,
    };
    if s.get(i) == Some(&b'.') {
        i = digits(s, i + 1)?;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(s, i)?;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_validator() {
        let mut stack = Vec::new();
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for ok in [
            "null",
            "true",
            "false",
            "0",
            "-0.5e+10",
            "1E3",
            "\"\"",
            "\"\\u00e9\\n\"",
            "[]",
            "{}",
            " [1, [2, {\"a\": {}}]] ",
            "{\"a\":1,\"b\":[true,false,null]}",
            deep.as_str(),
        ] {
            assert!(is_json(ok.as_bytes(), &mut stack), "{ok}");
        }
        for bad in [
            "",
            " ",
            "nul",
            "tru",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":}",
            "{a:1}",
            "{\"a\":1,}",
            "[",
            "]",
            "[}",
            "\"abc",
            "\"\\x\"",
            "\"\\u00g0\"",
            "\"tab\there\"",
            "{} {}",
            "NaN",
            "'a'",
        ] {
            assert!(!is_json(bad.as_bytes(), &mut stack), "{bad}");
        }
    }
}
