//! `datastores.yaml`: named connections, with `${ENV_VAR}` substitution in
//! values so secrets stay out of files.

mod env;
mod written;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::{Connection, ConnectionSpec, ConnectorType, ConnectorTypes};
use crate::error::{PlannerError, Problem, Result};
use crate::yaml;

pub use env::{deserialize_port, substitute, EnvString};
pub use written::{WrittenConnection, SECRET_FIELDS};

/// A password or token: never printed, never serialized in clear.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        EnvString::deserialize(d).map(|v| Secret(v.0))
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The clear value, for handing to a driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Connection text that is printed (host, user, database) but may hold a
/// URL pasted whole, password and all: every printed form (Display, Debug,
/// serialized) goes through [`redact_url_password`]. Deref gives the text as
/// written, for the driver.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Masked(String);

impl Masked {
    pub fn new(value: impl Into<String>) -> Self {
        Masked(value.into())
    }
}

impl Deref for Masked {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Masked {
    fn from(s: &str) -> Self {
        Masked(s.to_string())
    }
}

impl From<String> for Masked {
    fn from(s: String) -> Self {
        Masked(s)
    }
}

impl fmt::Display for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url_password(&self.0))
    }
}

impl fmt::Debug for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact_url_password(&self.0), f)
    }
}

impl Serialize for Masked {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&redact_url_password(&self.0))
    }
}

/// `text` with the password of every `scheme://user:password@` in it
/// replaced by `***`, for printing connection text of any kind. The scheme
/// is not checked: a mistyped one hides a password all the same.
///
/// A URL runs to the next whitespace and its credentials to the last `@` in
/// it, so a password with an unencoded `/` or `@` is still covered; a query
/// holding an `@` makes it mask more than the password, which is the safe
/// side. A password with unencoded whitespace is beyond what text can tell.
pub fn redact_url_password(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        let tail = &rest[i + 3..];
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let url = &tail[..end];
        let credentials = url
            .rfind('@')
            .and_then(|at| url[..at].find(':').map(|colon| (colon, at)));
        match credentials {
            Some((colon, at)) => {
                out.push_str(&url[..=colon]);
                out.push_str("***");
                out.push_str(&url[at..]);
                changed = true;
            }
            None => out.push_str(url),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatastoresFile {
    datastores: Entries,
}

thread_local! {
    // The connector types a parse reads `connection:` mappings with; like
    // the variable lookup, handed to the entries' Deserialize this way.
    static TYPES: std::cell::RefCell<Option<ConnectorTypes>> = const { std::cell::RefCell::new(None) };
}

/// Installs `types` for the parses on this thread until dropped.
struct TypesScope;

impl TypesScope {
    fn install(types: &ConnectorTypes) -> TypesScope {
        TYPES.with(|t| *t.borrow_mut() = Some(types.clone()));
        TypesScope
    }
}

impl Drop for TypesScope {
    fn drop(&mut self) {
        TYPES.with(|t| *t.borrow_mut() = None);
    }
}

fn installed_types() -> ConnectorTypes {
    TYPES.with(|t| t.borrow().clone()).unwrap_or_default()
}

/// The `datastores:` mapping, read entry by entry so that substitution
/// knows which datastore a value belongs to (see `env::WantedScope`).
struct Entries(BTreeMap<String, Entry>);

/// One datastore as written: its type, and its connection as that type's
/// connector read it (`None` for a type no connector has).
struct Entry {
    kind: String,
    connection: Option<Box<dyn ConnectionSpec>>,
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of datastore names to datastores")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut entries = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    env::reading_entry(Some(&name));
                    let entry = map.next_value::<Entry>();
                    env::reading_entry(None);
                    entries.insert(name, entry?);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        const FIELDS: &[&str] = &["type", "connection"];
        struct EntryVisitor;
        impl<'de> serde::de::Visitor<'de> for EntryVisitor {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a datastore: type and connection")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entry, A::Error> {
                let types = installed_types();
                let mut kind: Option<String> = None;
                let mut connection = None;
                // A connection written before its type waits for it.
                let mut early: Option<serde_norway::Value> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "type" => kind = Some(map.next_value::<EnvString>()?.0),
                        "connection" => match kind.as_deref().map(|k| types.get(k)) {
                            Some(Some(connector)) => {
                                connection = Some(map.next_value_seed(ConnectionSeed(connector))?)
                            }
                            // Reported as the type's problem.
                            Some(None) => {
                                map.next_value::<serde::de::IgnoredAny>()?;
                            }
                            None => early = Some(map.next_value()?),
                        },
                        other => return Err(A::Error::unknown_field(other, FIELDS)),
                    }
                }
                let kind = kind.ok_or_else(|| A::Error::missing_field("type"))?;
                if connection.is_none() {
                    if let Some(connector) = types.get(&kind) {
                        let value = early.unwrap_or_else(|| {
                            serde_norway::Value::Mapping(serde_norway::Mapping::new())
                        });
                        let mut erased = <dyn erased_serde::Deserializer>::erase(value);
                        connection = Some(
                            connector
                                .parse_connection(&mut erased)
                                .map_err(A::Error::custom)?,
                        );
                    }
                }
                Ok(Entry { kind, connection })
            }
        }
        d.deserialize_map(EntryVisitor)
    }
}

/// Reads a `connection:` mapping with its connector's own config type.
struct ConnectionSeed<'a>(&'a dyn ConnectorType);

impl<'de> serde::de::DeserializeSeed<'de> for ConnectionSeed<'_> {
    type Value = Box<dyn ConnectionSpec>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        use serde::de::Error as _;
        let mut erased = <dyn erased_serde::Deserializer>::erase(d);
        self.0
            .parse_connection(&mut erased)
            .map_err(|e| D::Error::custom(format!("{}{e}", yaml::NESTED_ERROR_MARK)))
    }
}

/// A datastore's path relative to the datastores file's folder `base`
/// (absolute paths as written).
pub fn relative_to(base: &Path, p: impl Into<PathBuf>) -> PathBuf {
    let p = p.into();
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// A resolved datastore: its name and the connection its connector opens.
#[derive(Debug, Clone)]
pub struct Datastore {
    pub name: String,
    pub connection: Arc<dyn Connection>,
    /// The connection as its file writes it, references unexpanded, for a
    /// task run elsewhere (see [`Datastore::written`]).
    written: Option<Arc<WrittenConnection>>,
}

impl Datastore {
    pub fn new(name: impl Into<String>, connection: Arc<dyn Connection>) -> Self {
        Datastore {
            name: name.into(),
            connection,
            written: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connector's type name.
    pub fn kind(&self) -> &'static str {
        self.connection.kind()
    }

    /// The schema a table without one lives in.
    pub fn default_schema(&self) -> Option<&str> {
        self.connection.default_schema()
    }

    /// The connection as its connector's own type.
    pub fn connection_as<T: Connection>(&self) -> Option<&T> {
        self.connection.as_any().downcast_ref::<T>()
    }
}

impl PartialEq for Datastore {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.kind() == other.kind()
            && self.connection.describe() == other.connection.describe()
    }
}

impl Eq for Datastore {}

impl Serialize for Datastore {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.connection.describe();
        let fields = fields.as_object();
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", self.kind())?;
        map.serialize_entry("name", &self.name)?;
        for (k, v) in fields.into_iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Every datastore of a file, resolved.
#[derive(Debug, Clone)]
pub struct Datastores {
    pub file: PathBuf,
    pub stores: BTreeMap<String, Datastore>,
    /// Every datastore the file defines, resolved or not (see `load_only`).
    pub defined: BTreeSet<String>,
}

impl Datastores {
    /// Reads `file`, with `${VAR}`s from the process environment.
    pub fn load(file: &Path, types: &ConnectorTypes) -> Result<Datastores> {
        Datastores::load_with_env(file, types, |v| std::env::var(v).ok())
    }

    /// Reads `file`, looking variables up with `lookup`.
    pub fn load_with_env(
        file: &Path,
        types: &ConnectorTypes,
        lookup: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Datastores> {
        let text = yaml::read_file(file)?;
        Datastores::parse(file, &text, types, lookup)
    }

    /// The datastores of `file` that `names` lists, resolved; the others
    /// are only checked to be well-formed YAML of the right fields, so an
    /// unsupported type or an unset variable elsewhere in a shared file does
    /// not stop this pipeline.
    pub fn load_only(
        file: &Path,
        types: &ConnectorTypes,
        names: &BTreeSet<String>,
    ) -> Result<Datastores> {
        let text = yaml::read_file(file)?;
        Datastores::parse_only(file, &text, types, |v| std::env::var(v).ok(), Some(names))
    }

    /// `text` as the datastores file `file` (which relative paths are
    /// resolved against).
    pub fn parse(
        file: &Path,
        text: &str,
        types: &ConnectorTypes,
        lookup: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Datastores> {
        Datastores::parse_only(file, text, types, lookup, None)
    }

    /// `parse`, resolving only the datastores `only` names (all: `None`).
    pub fn parse_only(
        file: &Path,
        text: &str,
        types: &ConnectorTypes,
        lookup: impl Fn(&str) -> Option<String> + 'static,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Datastores> {
        let parsed: DatastoresFile = {
            let _scope = env::LookupScope::install(Rc::new(lookup));
            let _wanted = env::WantedScope::install(only.cloned());
            let _types = TypesScope::install(types);
            yaml::parse(file, text).map_err(env_or_redacted)?
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let mut written = written::written_connections(text);
        let defined: BTreeSet<String> = parsed.datastores.0.keys().cloned().collect();
        let mut stores = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, entry) in parsed.datastores.0 {
            if only.is_some_and(|only| !only.contains(&name)) {
                continue;
            }
            let Some(spec) = entry.connection else {
                problems.push(unknown_type(&name, &entry.kind, types));
                continue;
            };
            match spec.resolve(&name, base) {
                Ok(connection) => {
                    let mut store = Datastore::new(name.clone(), connection);
                    if let Some(Some(as_written)) = written.remove(&name) {
                        let kind = store.kind();
                        store = store.with_written(WrittenConnection::new(kind, as_written, base));
                    }
                    stores.insert(name, store);
                }
                Err(p) => problems.extend(p),
            }
        }
        if !problems.is_empty() {
            return Err(PlannerError::Invalid {
                file: file.to_path_buf(),
                problems,
            });
        }
        Ok(Datastores {
            file: file.to_path_buf(),
            stores,
            defined,
        })
    }

    /// Finds the datastores file for a pipeline: the explicit one, else
    /// `datastores.yaml` beside the pipeline, else in its parent folder.
    pub fn locate(pipeline: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        let dir = pipeline.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let candidates = [
            dir.join("datastores.yaml"),
            dir.join("..").join("datastores.yaml"),
        ];
        for c in &candidates {
            if c.is_file() {
                return Ok(c.clone());
            }
        }
        Err(PlannerError::NoDatastores {
            pipeline: pipeline.to_path_buf(),
            searched: candidates.to_vec(),
        })
    }

    /// The named datastore, or an error that lists the defined ones.
    pub fn get(
        &self,
        pipeline_file: &Path,
        field: &str,
        name: &str,
    ) -> Result<&Datastore, crate::error::Problem> {
        self.stores.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .defined
                .iter()
                .chain(self.stores.keys())
                .map(String::as_str)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let hint = match yaml::closest(name, &known) {
                Some(c) => format!("; did you mean \"{c}\"?"),
                None => format!("; defined: {}", known.join(", ")),
            };
            let _ = pipeline_file;
            crate::error::Problem {
                path: field.to_string(),
                message: format!(
                    "datastore \"{name}\" is not defined in {}{hint}",
                    self.file.display()
                ),
            }
        })
    }
}

/// The problem of a datastore whose type no connector has.
fn unknown_type(name: &str, kind: &str, types: &ConnectorTypes) -> Problem {
    let supported = types.names().join(", ");
    let kind = kind.to_ascii_lowercase();
    Problem {
        path: format!("datastores.{name}.type"),
        message: if types.is_planned(&kind) {
            format!("not supported yet: datastore type \"{kind}\" (supported: {supported})")
        } else {
            format!(
                "unknown datastore type \"{}\"; supported: {supported}",
                redact_url_password(&kind)
            )
        },
    }
}

/// A parse error as the user should see it: a missing variable names it (at
/// the value's line); anything else has any URL password in it masked, since
/// serde quotes a value of the wrong type.
fn env_or_redacted(e: PlannerError) -> PlannerError {
    match e {
        PlannerError::Yaml {
            file,
            line,
            column,
            message,
        } => match env::missing_var(&message) {
            Some(var) => PlannerError::MissingEnv {
                file,
                line,
                var: var.to_string(),
            },
            None => PlannerError::Yaml {
                file,
                line,
                column,
                message: redact_url_password(&message).into_owned(),
            },
        },
        other => other,
    }
}
