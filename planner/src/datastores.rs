//! `datastores.yaml`: named connections, with `${ENV_VAR}` substitution in
//! values so secrets stay out of files.

mod env;
mod url;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{PlannerError, Problem, Result};
use crate::yaml;

pub use env::{substitute, EnvString};

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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DatastoresFile {
    datastores: Entries,
}

/// The `datastores:` mapping, read entry by entry so that substitution
/// knows which datastore a value belongs to (see `env::WantedScope`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
struct Entries(BTreeMap<String, DatastoreConfig>);

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
                    let config = map.next_value::<DatastoreConfig>();
                    env::reading_entry(None);
                    entries.insert(name, config?);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

/// One connection as written in the file; every string value may hold
/// `${VAR}`s.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    #[serde(rename = "type")]
    pub kind: EnvString,
    #[serde(default)]
    pub connection: ConnectionConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// `postgresql://user:password@host:port/dbname?sslmode=…`. A field
    /// written beside it wins over the URL's part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<EnvString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<EnvString>,
    #[serde(
        default,
        deserialize_with = "env::deserialize_port",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EnvString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, alias = "database", skip_serializing_if = "Option::is_none")]
    pub dbname: Option<EnvString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<EnvString>,
    /// File path, for embedded databases; relative to the datastores file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<EnvString>,
    /// disable | prefer (the default) | require | verify-ca | verify-full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslmode: Option<EnvString>,
    /// CA certificates (PEM) the server's must chain to; relative to the
    /// datastores file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<EnvString>,
    /// Client certificate (PEM), with `sslkey` its private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslcert: Option<EnvString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslkey: Option<EnvString>,
}

/// How a PostgreSQL connection uses TLS; the names and meanings are libpq's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not
    /// checked.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked unless
    /// `sslrootcert` is given, which makes it verify-ca.
    Require,
    /// TLS with a certificate that chains to a trusted CA, whatever host
    /// name it is for.
    VerifyCa,
    /// verify-ca, and the certificate must be for the host connected to.
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static [&'static str] =
        &["disable", "prefer", "require", "verify-ca", "verify-full"];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Option<SslMode> {
        match s {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PostgreSQL connection's TLS settings, file paths resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PgTls {
    pub sslmode: SslMode,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_path"
    )]
    pub sslrootcert: Option<PathBuf>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_path"
    )]
    pub sslcert: Option<PathBuf>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_path"
    )]
    pub sslkey: Option<PathBuf>,
}

fn serialize_path<S: Serializer>(
    p: &Option<PathBuf>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&redact_url_password(&p.display().to_string())),
        None => s.serialize_none(),
    }
}

/// A resolved connection the connectors can open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Datastore {
    Postgres {
        name: String,
        host: Masked,
        port: u16,
        user: Masked,
        password: Option<Secret>,
        dbname: Masked,
        schema: Option<String>,
        #[serde(flatten)]
        tls: PgTls,
    },
    Sqlite {
        name: String,
        path: PathBuf,
    },
}

impl Datastore {
    pub fn name(&self) -> &str {
        match self {
            Datastore::Postgres { name, .. } | Datastore::Sqlite { name, .. } => name,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Datastore::Postgres { .. } => "postgres",
            Datastore::Sqlite { .. } => "sqlite",
        }
    }
    /// The schema a table without one lives in.
    pub fn default_schema(&self) -> Option<&str> {
        match self {
            Datastore::Postgres { schema, .. } => Some(schema.as_deref().unwrap_or("public")),
            Datastore::Sqlite { .. } => None,
        }
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

/// The datastore types SyncHub can connect to today.
pub const DATASTORE_TYPES: &[&str] = &["postgres", "sqlite"];
/// Types named in the spec that are still to come.
const PLANNED_TYPES: &[&str] = &[
    "mysql",
    "mariadb",
    "starrocks",
    "clickhouse",
    "duckdb",
    "s3",
    "delta",
    "parquet",
];

impl Datastores {
    /// Reads `file`, with `${VAR}`s from the process environment.
    pub fn load(file: &Path) -> Result<Datastores> {
        Datastores::load_with_env(file, |v| std::env::var(v).ok())
    }

    /// Reads `file`, looking variables up with `lookup`.
    pub fn load_with_env(
        file: &Path,
        lookup: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Datastores> {
        let text = yaml::read_file(file)?;
        Datastores::parse(file, &text, lookup)
    }

    /// The datastores of `file` that `names` lists, resolved; the others
    /// are only checked to be well-formed YAML of the right fields, so an
    /// unsupported type or an unset variable elsewhere in a shared file does
    /// not stop this pipeline.
    pub fn load_only(file: &Path, names: &BTreeSet<String>) -> Result<Datastores> {
        let text = yaml::read_file(file)?;
        Datastores::parse_only(file, &text, |v| std::env::var(v).ok(), Some(names))
    }

    /// `text` as the datastores file `file` (which relative paths are
    /// resolved against).
    pub fn parse(
        file: &Path,
        text: &str,
        lookup: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Datastores> {
        Datastores::parse_only(file, text, lookup, None)
    }

    /// `parse`, resolving only the datastores `only` names (all: `None`).
    pub fn parse_only(
        file: &Path,
        text: &str,
        lookup: impl Fn(&str) -> Option<String> + 'static,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Datastores> {
        let parsed: DatastoresFile = {
            let _scope = env::LookupScope::install(Rc::new(lookup));
            let _wanted = env::WantedScope::install(only.cloned());
            yaml::parse(file, text).map_err(env_or_redacted)?
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let defined: BTreeSet<String> = parsed.datastores.0.keys().cloned().collect();
        let mut stores = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, cfg) in parsed.datastores.0 {
            if only.is_some_and(|only| !only.contains(&name)) {
                continue;
            }
            match resolve(&name, &cfg, base) {
                Ok(ds) => {
                    stores.insert(name, ds);
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

fn given(field: &Option<EnvString>) -> Option<String> {
    field
        .as_ref()
        .and_then(EnvString::non_empty)
        .map(str::to_string)
}

fn resolve(
    name: &str,
    cfg: &DatastoreConfig,
    base: &Path,
) -> std::result::Result<Datastore, Vec<Problem>> {
    let problem = |field: &str, message: String| Problem {
        path: format!("datastores.{name}.{field}"),
        message,
    };
    let c = &cfg.connection;
    match cfg.kind.0.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => resolve_postgres(name, c, base),
        "sqlite" => {
            let mut problems: Vec<Problem> = [
                ("url", c.url.is_some()),
                ("sslmode", c.sslmode.is_some()),
                ("sslrootcert", c.sslrootcert.is_some()),
                ("sslcert", c.sslcert.is_some()),
                ("sslkey", c.sslkey.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(field, _)| {
                problem(
                    &format!("connection.{field}"),
                    format!("a sqlite datastore takes no {field}; it is a file, named by path"),
                )
            })
            .collect();
            let path = given(&c.path);
            if path.is_none() {
                problems.push(problem(
                    "connection.path",
                    "a sqlite datastore needs path (relative to the datastores file)".to_string(),
                ));
            }
            match path {
                Some(p) if problems.is_empty() => Ok(Datastore::Sqlite {
                    name: name.to_string(),
                    path: relative_to(base, p),
                }),
                _ => Err(problems),
            }
        }
        other if PLANNED_TYPES.contains(&other) => Err(vec![problem(
            "type",
            format!(
                "not supported yet: datastore type \"{other}\" (supported: {})",
                DATASTORE_TYPES.join(", ")
            ),
        )]),
        other => Err(vec![problem(
            "type",
            format!(
                "unknown datastore type \"{}\"; supported: {}",
                redact_url_password(other),
                DATASTORE_TYPES.join(", ")
            ),
        )]),
    }
}

fn relative_to(base: &Path, p: String) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// A postgres datastore from its fields and its `url`.
///
/// `url` and the separate fields combine, field by field: one written beside
/// the URL wins over the URL's part, so a URL shared through `${DATABASE_URL}`
/// can be narrowed in the file (say, `sslmode: verify-full`, or another
/// `dbname`). `schema` has no place in a URL and is only a field. A field
/// left empty by `${VAR:-}` counts as not written.
fn resolve_postgres(
    name: &str,
    c: &ConnectionConfig,
    base: &Path,
) -> std::result::Result<Datastore, Vec<Problem>> {
    let problem = |field: &str, message: String| Problem {
        path: format!("datastores.{name}.connection.{field}"),
        message,
    };
    let mut problems = Vec::new();
    let mut url_unreadable = false;
    let url = match c
        .url
        .as_ref()
        .and_then(EnvString::non_empty)
        .map(url::parse)
    {
        Some(Ok(u)) => u,
        Some(Err(message)) => {
            url_unreadable = true;
            problems.push(problem("url", format!("not a PostgreSQL URL: {message}")));
            url::PgUrl::default()
        }
        None => url::PgUrl::default(),
    };
    // Where a setting came from, for a problem with it.
    let origin = |field: &'static str, written: bool| if written { field } else { "url" };

    let sslmode = match given(&c.sslmode) {
        Some(s) => Some((s, origin("sslmode", true))),
        None => url.sslmode.clone().map(|s| (s, origin("sslmode", false))),
    };
    let sslmode = match sslmode {
        None => SslMode::default(),
        Some((s, field)) => SslMode::parse(&s).unwrap_or_else(|| {
            problems.push(problem(
                field,
                format!(
                    "unknown sslmode \"{}\"; valid: {}",
                    redact_url_password(&s),
                    SslMode::NAMES.join(", ")
                ),
            ));
            SslMode::default()
        }),
    };
    let file = |written: &Option<EnvString>, from_url: &Option<String>| {
        given(written)
            .or_else(|| from_url.clone().filter(|s| !s.is_empty()))
            .map(|p| relative_to(base, p))
    };
    let tls = PgTls {
        sslmode,
        sslrootcert: file(&c.sslrootcert, &url.sslrootcert),
        sslcert: file(&c.sslcert, &url.sslcert),
        sslkey: file(&c.sslkey, &url.sslkey),
    };
    match (&tls.sslcert, &tls.sslkey) {
        (Some(_), None) => problems.push(problem(
            "sslkey",
            "sslcert needs sslkey, the client certificate's private key".to_string(),
        )),
        (None, Some(_)) => problems.push(problem(
            "sslcert",
            "sslkey needs sslcert, the client certificate it is the key of".to_string(),
        )),
        _ => {}
    }
    let dbname = given(&c.dbname).or(url.dbname);
    // A URL that did not parse may well have held the database.
    if dbname.is_none() && !url_unreadable {
        problems.push(problem(
            "dbname",
            "a postgres datastore needs dbname".to_string(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let password = c
        .password
        .clone()
        .filter(|p| !p.expose().is_empty())
        .or(url.password.map(Secret));
    Ok(Datastore::Postgres {
        name: name.to_string(),
        host: Masked(
            given(&c.host)
                .or(url.host)
                .unwrap_or_else(|| "127.0.0.1".to_string()),
        ),
        port: c.port.or(url.port).unwrap_or(5432),
        user: Masked(
            given(&c.user)
                .or(url.user)
                .unwrap_or_else(|| "postgres".to_string()),
        ),
        password,
        dbname: Masked(dbname.unwrap_or_default()),
        schema: given(&c.schema),
        tls,
    })
}

#[cfg(test)]
mod tests;
