//! `${VAR}` substitution in the parsed values of `datastores.yaml`.
//!
//! Substituting into the file's text would hand the variable's bytes to the
//! YAML parser: a `"` would end a quoted scalar, `\x50` would be decoded, and
//! `x", schema: "evil` would add a key. Here a value is substituted after the
//! parser has delimited it, so whatever the variable holds arrives verbatim
//! and comments, being no values, are never looked at.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Where variables are looked up while a file is parsed.
pub(crate) type Lookup = Rc<dyn Fn(&str) -> Option<String>>;

thread_local! {
    // serde's derive offers no way to hand a context to a field's
    // Deserialize; the parse runs on this thread, so it is installed here.
    static LOOKUP: RefCell<Option<Lookup>> = const { RefCell::new(None) };
}

/// Installs `lookup` for the parses on this thread until dropped.
pub(crate) struct LookupScope {
    previous: Option<Lookup>,
}

impl LookupScope {
    pub(crate) fn install(lookup: Lookup) -> LookupScope {
        let previous = LOOKUP.with(|l| l.borrow_mut().replace(lookup));
        LookupScope { previous }
    }
}

impl Drop for LookupScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        LOOKUP.with(|l| *l.borrow_mut() = previous);
    }
}

thread_local! {
    // The datastores a parse resolves (`None`: all) and the one whose entry
    // is being read: values of the others are kept as written, so a
    // variable only they use need not be set.
    static WANTED: RefCell<Option<std::collections::BTreeSet<String>>> = const { RefCell::new(None) };
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Limits substitution to the entries of `wanted` until dropped.
pub(crate) struct WantedScope;

impl WantedScope {
    pub(crate) fn install(wanted: Option<std::collections::BTreeSet<String>>) -> WantedScope {
        WANTED.with(|w| *w.borrow_mut() = wanted);
        WantedScope
    }
}

impl Drop for WantedScope {
    fn drop(&mut self) {
        WANTED.with(|w| *w.borrow_mut() = None);
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// Marks the entry being read, for `substituted`.
pub(crate) fn reading_entry(name: Option<&str>) {
    CURRENT.with(|c| *c.borrow_mut() = name.map(str::to_string));
}

/// Whether the entry being read is one the parse resolves.
pub(crate) fn entry_wanted() -> bool {
    let current = CURRENT.with(|c| c.borrow().clone());
    WANTED.with(|w| match (&*w.borrow(), current) {
        (Some(wanted), Some(name)) => wanted.contains(&name),
        _ => true,
    })
}

fn lookup(var: &str) -> Option<String> {
    let installed = LOOKUP.with(|l| l.borrow().clone());
    match installed {
        Some(f) => f(var),
        None => std::env::var(var).ok(),
    }
}

/// Set in a deserializer error so the loader can tell a missing variable from
/// a YAML error while keeping the parser's line number.
pub(crate) const MISSING_ENV_MARK: &str = "\u{1}missing environment variable ";

/// The variable a deserializer error is about, when it is a missing one.
pub(crate) fn missing_var(message: &str) -> Option<&str> {
    let at = message.find(MISSING_ENV_MARK)?;
    Some(&message[at + MISSING_ENV_MARK.len()..])
}

/// Replaces every `${VAR}` and `${VAR:-default}` in one value. `:-` falls back
/// like the shell's: when the variable is unset or empty. `$${` is a literal
/// `${`. What a variable holds is not scanned again. `Err` names the first
/// variable that is unset and has no default.
pub fn substitute(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(inner_end) = after.strip_prefix("${").and_then(|t| t.find('}')) else {
            // A lone `$` or an unclosed `${` is text.
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let inner = &after[2..2 + inner_end];
        let resolved = match inner.split_once(":-") {
            Some((var, default)) => lookup(var)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string()),
            None => lookup(inner).ok_or_else(|| inner.to_string())?,
        };
        out.push_str(&resolved);
        rest = &after[3 + inner_end..];
    }
    out.push_str(rest);
    Ok(out)
}

fn substituted<E: de::Error>(raw: &str) -> Result<String, E> {
    if !entry_wanted() {
        return Ok(raw.to_string());
    }
    substitute(raw, lookup).map_err(|var| E::custom(format!("{MISSING_ENV_MARK}{var}")))
}

/// A string value of `datastores.yaml`, with its `${VAR}`s substituted.
/// Prints like [`super::Masked`]: a URL's password never shows.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvString(pub String);

impl EnvString {
    /// The value, `None` when it is empty: `${VAR:-}` leaves a field unset.
    pub fn non_empty(&self) -> Option<&str> {
        Some(self.0.as_str()).filter(|s| !s.is_empty())
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Substituting inside the visitor, not after it returns, is what makes
        // the parser locate a missing variable at its value's line.
        struct EnvVisitor;
        impl Visitor<'_> for EnvVisitor {
            type Value = EnvString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvString, E> {
                substituted(v).map(EnvString)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvString, E> {
                Ok(EnvString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvString, E> {
                Ok(EnvString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvString, E> {
                Ok(EnvString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvString, E> {
                Ok(EnvString(v.to_string()))
            }
        }
        d.deserialize_string(EnvVisitor)
    }
}

impl fmt::Debug for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&super::redact_url_password(&self.0), f)
    }
}

impl Serialize for EnvString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::redact_url_password(&self.0))
    }
}

/// A port written as a number or as a string with `${VAR}`s; `None` when a
/// substitution leaves it empty.
pub fn deserialize_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct PortVisitor;
    impl Visitor<'_> for PortVisitor {
        type Value = Option<u16>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a port number from 1 to 65535")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            match u16::try_from(v) {
                Ok(p) if p > 0 => Ok(Some(p)),
                _ => Err(E::custom(format!(
                    "port must be a number from 1 to 65535, not {v}"
                ))),
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format!(
                    "port must be a number from 1 to 65535, not {v}"
                ))),
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let value = substituted::<E>(v)?;
            let value = value.trim();
            if value.is_empty() {
                return Ok(None);
            }
            match value.parse::<u64>() {
                Ok(n) => self.visit_u64(n),
                // Never echoed: it may be a misplaced secret.
                Err(_) => Err(E::custom("port must be a number from 1 to 65535")),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(PortVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "X" => Some("v".into()),
            "EMPTY" => Some(String::new()),
            "NASTY" => Some("${X}".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(substitute("${X}-${X}", env).unwrap(), "v-v");
        assert_eq!(
            substitute("a${NOPE:-fallback}b", env).unwrap(),
            "afallbackb"
        );
        assert_eq!(substitute("${EMPTY:-d}", env).unwrap(), "d");
        assert_eq!(substitute("${NOPE:-}", env).unwrap(), "");
        assert_eq!(substitute("${EMPTY}", env).unwrap(), "");
        assert_eq!(substitute("$${X} $X $ ${X", env).unwrap(), "${X} $X $ ${X");
        // A value is not scanned again.
        assert_eq!(substitute("${NASTY}", env).unwrap(), "${X}");
        assert_eq!(substitute("a ${NOPE} ${X}", env).unwrap_err(), "NOPE");
    }
}
