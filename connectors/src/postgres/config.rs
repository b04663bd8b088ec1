//! A PostgreSQL datastore's `connection:`: its fields, its `url`, and TLS.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use planner::datastores::{deserialize_port, redact_url_password, relative_to, EnvString, Masked};
use planner::{Connection, ConnectionSpec, Problem, Secret, SqlDialect};
use serde::{Deserialize, Serialize, Serializer};

use super::url;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConnectionConfig {
    /// `postgresql://user:password@host:port/dbname?sslmode=…`. A field
    /// written beside it wins over the URL's part.
    #[serde(default)]
    pub url: Option<EnvString>,
    #[serde(default)]
    pub host: Option<EnvString>,
    #[serde(
        default,
        deserialize_with = "deserialize_port",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<EnvString>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default, alias = "database")]
    pub dbname: Option<EnvString>,
    #[serde(default)]
    pub schema: Option<EnvString>,
    /// disable | prefer (the default) | require | verify-ca | verify-full.
    #[serde(default)]
    pub sslmode: Option<EnvString>,
    /// CA certificates (PEM) the server's must chain to; relative to the
    /// datastores file.
    #[serde(default)]
    pub sslrootcert: Option<EnvString>,
    /// Client certificate (PEM), with `sslkey` its private key.
    #[serde(default)]
    pub sslcert: Option<EnvString>,
    #[serde(default)]
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

    pub fn parse(s: &str) -> Option<SslMode> {
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

/// A resolved PostgreSQL connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostgresConnection {
    /// The datastore's name, for messages.
    #[serde(skip)]
    pub name: String,
    pub host: Masked,
    pub port: u16,
    pub user: Masked,
    pub password: Option<Secret>,
    pub dbname: Masked,
    pub schema: Option<String>,
    #[serde(flatten)]
    pub tls: PgTls,
}

impl Connection for PostgresConnection {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn default_schema(&self) -> Option<&str> {
        Some(self.schema.as_deref().unwrap_or("public"))
    }

    fn sql_dialect(&self) -> SqlDialect {
        SqlDialect::Postgres
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl ConnectionSpec for PostgresConnectionConfig {
    fn resolve(&self, datastore: &str, base: &Path) -> Result<Arc<dyn Connection>, Vec<Problem>> {
        resolve_postgres(datastore, self, base).map(|c| Arc::new(c) as Arc<dyn Connection>)
    }
}

fn given(field: &Option<EnvString>) -> Option<String> {
    field
        .as_ref()
        .and_then(EnvString::non_empty)
        .map(str::to_string)
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
    c: &PostgresConnectionConfig,
    base: &Path,
) -> Result<PostgresConnection, Vec<Problem>> {
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
        .or(url.password.map(Secret::new));
    Ok(PostgresConnection {
        name: name.to_string(),
        host: Masked::new(
            given(&c.host)
                .or(url.host)
                .unwrap_or_else(|| "127.0.0.1".to_string()),
        ),
        port: c.port.or(url.port).unwrap_or(5432),
        user: Masked::new(
            given(&c.user)
                .or(url.user)
                .unwrap_or_else(|| "postgres".to_string()),
        ),
        password,
        dbname: Masked::new(dbname.unwrap_or_default()),
        schema: given(&c.schema),
        tls,
    })
}
