//! The runner's side of PostgreSQL: the generated table, the raw COPY pipe
//! and the bare checksum scans that synchub is measured against.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::{Client, NoTls};

use crate::DeltaChange;

/// The schemas the runner owns; all dropped at the end (unless `--keep`).
pub const SRC: &str = "bench_src";
/// synchub's destination.
pub const DST: &str = "bench_dst";
/// The raw pipe's destination.
pub const PIPE: &str = "bench_pipe";
/// dlt's destination (`--peers`).
pub const DLT: &str = "bench_dlt";

/// The columns of the generated table, in order.
pub const COLUMNS: &str = "id, qty, category, price, title, created_at, updated_at, note, active";

/// Its definition, for the source and for the raw pipe's destination (which
/// gets the same primary key synchub's destination gets).
pub const DDL: &str = "(id bigint PRIMARY KEY, qty int NOT NULL, category int NOT NULL, \
    price numeric(12,2) NOT NULL, title text NOT NULL, created_at timestamptz NOT NULL, \
    updated_at timestamptz NOT NULL, note text, active boolean NOT NULL)";

/// The column map of the benchmark pipeline (YAML flow mappings).
pub const COLUMN_MAP: &str = "  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: qty, dest: qty, data_type: int}
  - {source: category, dest: category, data_type: int}
  - {source: price, dest: price, data_type: decimal, precision: 12, scale: 2}
  - {source: title, dest: title, data_type: text}
  - {source: created_at, dest: created_at, data_type: timestamptz}
  - {source: updated_at, dest: updated_at, data_type: timestamptz}
  - {source: note, dest: note, data_type: text}
  - {source: active, dest: active, data_type: bool}
";

/// Where the local PostgreSQL is.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
}

impl PgTarget {
    fn password() -> Option<String> {
        std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty())
    }

    pub fn conn_string(&self) -> String {
        let mut s = format!(
            "host={} port={} user={} dbname={} application_name=synchub-bench",
            self.host, self.port, self.user, self.dbname
        );
        if let Some(p) = Self::password() {
            s.push_str(&format!(" password='{}'", p.replace('\'', "\\'")));
        }
        s
    }

    /// A `datastores.yaml` entry for `schema`; the password, if any, is
    /// passed by reference to the environment, never written down. Plain
    /// TCP, as the baselines' connections are: the ratios compare the same
    /// transport (SyncHub's default `sslmode: prefer` would encrypt).
    pub fn datastore_yaml(&self, name: &str, schema: &str) -> String {
        let password = if Self::password().is_some() {
            ", password: \"${PGPASSWORD}\""
        } else {
            ""
        };
        format!(
            "  {name}: {{type: postgres, connection: {{host: {}, port: {}, user: {}, dbname: {}, schema: {schema}, sslmode: disable{password}}}}}\n",
            self.host, self.port, self.user, self.dbname
        )
    }
}

pub async fn connect(pg: &PgTarget) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(&pg.conn_string(), NoTls)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {}:{} (user {}, db {})",
                pg.host, pg.port, pg.user, pg.dbname
            )
        })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Drops every schema the runner uses.
pub async fn drop_all(c: &Client) -> Result<()> {
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {SRC} CASCADE; DROP SCHEMA IF EXISTS {DST} CASCADE; \
         DROP SCHEMA IF EXISTS {PIPE} CASCADE; DROP SCHEMA IF EXISTS {DLT} CASCADE"
    ))
    .await?;
    crate::shapes::drop_all(c).await?;
    Ok(())
}

/// (Re)creates the source table with `rows` rows: a bigint key, two ints,
/// numeric(12,2), a text of 8 to 97 characters, two timestamptz (the second
/// one, `updated_at`, is the delta cursor and has an index as a delta source
/// would), a text that is NULL one row in five, and a bool.
pub async fn create_source(c: &Client, rows: i64) -> Result<()> {
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {SRC} CASCADE; CREATE SCHEMA {SRC};
         CREATE TABLE {SRC}.items {DDL};
         INSERT INTO {SRC}.items ({COLUMNS})
         SELECT g, (g % 1000)::int, (g % 37)::int, round(((g * 7919) % 10000000) / 100.0, 2),
                left(repeat(md5(g::text), 3), 8 + ((g * 7919) % 90)::int),
                timestamptz '2024-01-01 00:00:00+00' + g * interval '1.5 second',
                timestamptz '2024-01-01 00:00:00+00' + g * interval '1.5 second',
                CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END,
                g % 2 = 0
         FROM generate_series(1::bigint, {rows}) g;
         CREATE INDEX ON {SRC}.items (updated_at);"
    ))
    .await
    .context("generating the source table")?;
    // Not in the block above: VACUUM cannot run in its implicit transaction.
    c.batch_execute(&format!("VACUUM ANALYZE {SRC}.items"))
        .await?;
    checkpoint(c).await
}

/// Moves 1% of the rows forward: `qty` changes and `updated_at` moves past
/// every cursor value so far, each row to its own value (so the watermark of
/// the next delta run ties with one row only). Returns the rows changed.
///
/// Then VACUUMs the three tables, so that neither the bare SQL delta nor
/// synchub's pays alone for setting the hint bits of the rows just written.
pub async fn change_for_delta(c: &Client, round: u32, which: DeltaChange) -> Result<u64> {
    let rows = match which {
        DeltaChange::Spread => format!("id % 100 = {}", round % 100),
        DeltaChange::Newest => {
            format!("id > (SELECT max(id) - count(*) / 100 FROM {SRC}.items)")
        }
    };
    let n = c
        .execute(
            &format!(
                "UPDATE {SRC}.items SET qty = qty + 1,
                   updated_at = m.t + interval '1 minute' + id * interval '1 microsecond'
                 FROM (SELECT max(updated_at) AS t FROM {SRC}.items) m
                 WHERE {rows}"
            ),
            &[],
        )
        .await?;
    // One statement per call: VACUUM cannot run in a multi-statement
    // batch's implicit transaction.
    c.batch_execute(&format!("VACUUM {SRC}.items, {PIPE}.items, {DST}.items"))
        .await?;
    c.batch_execute("CHECKPOINT").await?;
    Ok(n)
}

/// The newest `updated_at` of the source, as PostgreSQL prints it.
pub async fn newest_cursor(c: &Client) -> Result<String> {
    Ok(c.query_one(
        &format!("SELECT max(updated_at)::text FROM {SRC}.items"),
        &[],
    )
    .await?
    .try_get(0)?)
}

/// The least SQL that applies a delta to the raw pipe's copy: rows with
/// `updated_at >= since` copied out of the source (binary) into a staging
/// table, one `INSERT … ON CONFLICT (id) DO UPDATE` of every column, one
/// commit. Returns the rows applied.
pub async fn bare_delta(from: &Client, to: &Client, since: &str) -> Result<u64> {
    // COPY takes no bind parameters; the value comes from PostgreSQL itself.
    ensure!(!since.contains('\''), "unexpected cursor text {since}");
    to.batch_execute(&format!(
        "BEGIN; CREATE TEMP TABLE stage (LIKE {PIPE}.items) ON COMMIT DROP"
    ))
    .await?;
    stream_copy(
        from,
        &format!(
            "COPY (SELECT {COLUMNS} FROM {SRC}.items WHERE updated_at >= '{since}'::timestamptz) \
             TO STDOUT (FORMAT binary)"
        ),
        to,
        &format!("COPY stage ({COLUMNS}) FROM STDIN (FORMAT binary)"),
    )
    .await
    .context("bare SQL delta")?;
    let set = COLUMNS
        .split(", ")
        .filter(|c| *c != "id")
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let applied = to
        .execute(
            &format!(
                "INSERT INTO {PIPE}.items ({COLUMNS}) SELECT {COLUMNS} FROM stage \
                 ON CONFLICT (id) DO UPDATE SET {set}"
            ),
            &[],
        )
        .await?;
    to.batch_execute("COMMIT").await?;
    Ok(applied)
}

/// The server's WAL insert position in bytes: the difference of two is the
/// WAL written between them.
pub async fn wal_position(c: &Client) -> Result<u64> {
    let bytes: i64 = c
        .query_one(
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint",
            &[],
        )
        .await?
        .try_get(0)?;
    Ok(bytes as u64)
}

/// Changes 0.1% of the rows, spread over every partition, without touching
/// the delta cursor (a hash sync has none). Returns the keys of the rows
/// changed, sorted: the set a hash diff must find.
pub async fn change_for_hash(c: &Client, round: u32) -> Result<Vec<i64>> {
    let rows = c
        .query(
            &format!(
                "UPDATE {SRC}.items SET title = title || '~' WHERE id % 1000 = {} RETURNING id",
                500 + round % 500
            ),
            &[],
        )
        .await?;
    let mut ids = rows
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    c.batch_execute("CHECKPOINT").await?;
    Ok(ids)
}

/// An empty destination for the raw pipe, defined like the source.
pub async fn reset_pipe_target(c: &Client) -> Result<()> {
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {PIPE} CASCADE; CREATE SCHEMA {PIPE}; CREATE TABLE {PIPE}.items {DDL}"
    ))
    .await?;
    Ok(())
}

/// The physical limit of a full sync: `COPY (SELECT …) TO STDOUT (FORMAT
/// binary)` on one connection streamed as it comes into `COPY … FROM STDIN
/// (FORMAT binary)` on another. Returns the rows copied.
pub async fn copy_pipe(from: &Client, to: &Client) -> Result<u64> {
    stream_copy(
        from,
        &format!("COPY (SELECT {COLUMNS} FROM {SRC}.items) TO STDOUT (FORMAT binary)"),
        to,
        &format!("COPY {PIPE}.items ({COLUMNS}) FROM STDIN (FORMAT binary)"),
    )
    .await
    .context("raw COPY pipe")
}

/// `copy_out` on one connection streamed as it comes into `copy_in` on
/// another. Returns the rows copied in.
async fn stream_copy(from: &Client, copy_out: &str, to: &Client, copy_in: &str) -> Result<u64> {
    let out = from.copy_out(copy_out).await?;
    let sink = to.copy_in::<_, Bytes>(copy_in).await?;
    let mut out = std::pin::pin!(out);
    let mut sink = std::pin::pin!(sink);
    sink.send_all(&mut out).await?;
    Ok(sink.as_mut().finish().await?)
}

/// The floor of a checksum comparison: one `count(*)` and sum of
/// `hashtextextended` (the hash synchub's checksums use) over each side's
/// table, both at once. Returns the two (count, sum) results.
pub async fn bare_checksums(a: &Client, b: &Client) -> Result<[(i64, String); 2]> {
    let (x, y) = tokio::try_join!(checksum(a, SRC), checksum(b, DST))?;
    Ok([x, y])
}

/// One side's bare checksum: `count(*)` and the sum of `hashtextextended`
/// over the rows' text of `{schema}.items` (whose columns must be the source's, in its order).
pub async fn checksum(c: &Client, schema: &str) -> Result<(i64, String)> {
    let r = c
        .query_one(
            &format!(
                "SELECT count(*), sum(hashtextextended(t::text, 0))::text FROM {schema}.items t"
            ),
            &[],
        )
        .await?;
    Ok((
        r.try_get(0)?,
        r.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
    ))
}

pub async fn checkpoint(c: &Client) -> Result<()> {
    c.batch_execute("CHECKPOINT").await?;
    Ok(())
}

/// Rows of a table, checked after the runs that must leave it complete.
pub async fn count(c: &Client, schema: &str) -> Result<i64> {
    let n: i64 = c
        .query_one(&format!("SELECT count(*) FROM {schema}.items"), &[])
        .await?
        .try_get(0)?;
    Ok(n)
}

/// Refuses to run beside another runner on the same database: the two
/// would share the `bench_*` schemas and each other's timings.
pub async fn lock(c: &Client) -> Result<()> {
    let got: bool = c
        .query_one(
            "SELECT pg_try_advisory_lock(hashtext('synchub-bench'))",
            &[],
        )
        .await?
        .try_get(0)?;
    ensure!(
        got,
        "another benchmark runner holds the bench_* schemas of this database"
    );
    Ok(())
}

pub async fn server_version(c: &Client) -> Result<String> {
    Ok(c.query_one("SHOW server_version", &[]).await?.try_get(0)?)
}
