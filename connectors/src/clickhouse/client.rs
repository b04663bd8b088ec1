//! ClickHouse's HTTP interface: a query is a POST whose body is the SQL
//! (and, for an INSERT, the rows after it); the answer is the result in the
//! format the query names, or an error text with a code.
//!
//! ClickHouse 18.16 has no bound parameters (`{name:Type}` came in 19.x):
//! rows travel as RowBinary data, never inside SQL, and the few values a
//! query must name (keys to delete or select) are written by [`literal`]
//! functions that escape every byte.

use bytes::Bytes;
use planner::Datastore;

use super::ClickHouseConnection;
use crate::error::ErrorKind;
use crate::{ConnectorError, Result};

/// Settings every query runs with: one INSERT is one block (so one part,
/// written whole or not at all) up to this many rows, and queries naming
/// many keys parse.
const SETTINGS: &[(&str, &str)] = &[
    ("max_insert_block_size", "100000000"),
    ("max_query_size", "104857600"),
];

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    user: String,
    password: Option<String>,
    address: String,
    datastore: String,
    pub database: String,
}

pub fn connection_of(datastore: &Datastore) -> Result<&ClickHouseConnection> {
    datastore
        .connection_as::<ClickHouseConnection>()
        .ok_or_else(|| {
            ConnectorError::Config(format!(
                "datastore \"{}\" is not a clickhouse datastore",
                datastore.name()
            ))
        })
}

impl Client {
    pub fn new(datastore: &Datastore) -> Result<Client> {
        let c = connection_of(datastore)?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ConnectorError::Config(format!("HTTP client: {e}")))?;
        let host = if c.host.contains(':') {
            format!("[{}]", &*c.host)
        } else {
            c.host.to_string()
        };
        Ok(Client {
            http,
            url: format!("http://{host}:{}/", c.port),
            user: c.user.to_string(),
            password: c.password.as_ref().map(|p| p.expose().to_string()),
            address: c.address(),
            datastore: datastore.name().to_string(),
            database: c.database.to_string(),
        })
    }

    /// Runs `sql` and returns what the server answered.
    pub async fn query(&self, sql: &str) -> Result<Bytes> {
        self.post(sql.as_bytes().to_vec()).await
    }

    /// Runs `insert` (an `INSERT … FORMAT RowBinary`) with `rows` as its data.
    pub async fn insert(&self, insert: &str, rows: Vec<u8>) -> Result<()> {
        let mut body = Vec::with_capacity(insert.len() + 1 + rows.len());
        body.extend_from_slice(insert.as_bytes());
        body.push(b'\n');
        body.extend_from_slice(&rows);
        self.post(body).await.map(|_| ())
    }

    /// Runs `sql` and reads its answer as text.
    pub async fn text(&self, sql: &str) -> Result<String> {
        let bytes = self.query(sql).await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| {
            ConnectorError::Other(format!("ClickHouse answered `{sql}` with non-UTF-8: {e}"))
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<Bytes> {
        let mut request = self
            .http
            .post(&self.url)
            // No `database=`: every query names its tables in full, and the
            // datastore's database may not exist before the sink creates it.
            .query(SETTINGS)
            .basic_auth(&self.user, self.password.as_deref())
            .body(body);
        // Compression stays off: the server is near, and 18.16's HTTP
        // compression would cost CPU on both sides of two shared cores.
        request = request.header("Accept-Encoding", "identity");
        let response = request.send().await.map_err(|e| {
            ConnectorError::Unreachable(format!(
                "cannot reach ClickHouse at {} (datastore \"{}\"): {}",
                self.address,
                self.datastore,
                without_url(&e)
            ))
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::Database {
                connector: "ClickHouse",
                kind: ErrorKind::Transient,
                message: format!(
                    "reading the answer from {}: {}",
                    self.address,
                    without_url(&e)
                ),
                source: None,
            })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        Err(server_error(&text))
    }
}

/// reqwest's message without the URL (which holds no password, but the
/// message names the host already).
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// An error text as the server sent it: `Code: 60, e.displayText() =
/// DB::Exception: Table x doesn't exist., e.what() = DB::Exception`.
fn server_error(text: &str) -> ConnectorError {
    let code: Option<u32> = text
        .strip_prefix("Code: ")
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    let kind = match code {
        // Unknown table/database/column/identifier, syntax, types, values
        // out of range, authentication, too many parts.
        Some(
            16
            | 27
            | 36
            | 38
            | 41
            | 43
            | 44
            | 47
            | 53
            | 57
            | 60
            | 62
            | 69
            | 70
            | 81
            | 192..=197
            | 516,
        ) => ErrorKind::User,
        Some(159 | 160 | 202 | 203 | 209 | 210 | 252) => ErrorKind::Transient,
        _ => ErrorKind::System,
    };
    let message = text
        .split(", e.what() =")
        .next()
        .unwrap_or(text)
        .replace("e.displayText() = ", "")
        .to_string();
    ConnectorError::Database {
        connector: "ClickHouse",
        kind,
        message,
        source: None,
    }
}

/// `name` as a ClickHouse identifier: backquoted, with backslash and
/// backquote escaped.
pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        match c {
            '`' => out.push_str("\\`"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('`');
    out
}

/// `database`.`table`.
pub fn table_name(database: &str, table: &str) -> String {
    format!("{}.{}", ident(database), ident(table))
}

/// Bytes as a string literal with every byte escaped (`'\x61\x62'`): no
/// quote, backslash or line break of a value ever reaches the parser as
/// itself.
pub fn bytes_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 + 2);
    out.push('\'');
    for b in bytes {
        out.push_str(&format!("\\x{b:02X}"));
    }
    out.push('\'');
    out
}
