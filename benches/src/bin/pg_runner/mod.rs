//! What the PostgreSQL runners (`aggregate`, `workers`) share: the
//! connection, the datastores file naming their two schemas, and the end
//! of a run (the report printed and written, the schemas dropped).

use std::path::Path;

use anyhow::{Context, Result};
use tokio_postgres::{Client, NoTls};

pub async fn connect(pg: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(pg, NoTls)
        .await
        .context("local PostgreSQL")?;
    tokio::spawn(conn);
    Ok(client)
}

/// `datastores.yaml` in `dir`: `src` and `dst`, the local PostgreSQL's
/// schemas `src` and `dst`, over plain TCP as the baselines are.
pub fn write_datastores(dir: &Path, src: &str, dst: &str) -> Result<()> {
    let store = |schema: &str| {
        format!(
            "{{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {schema}, sslmode: disable}}}}"
        )
    };
    std::fs::write(
        dir.join("datastores.yaml"),
        format!(
            "datastores:\n  src: {}\n  dst: {}\n",
            store(src),
            store(dst)
        ),
    )?;
    Ok(())
}

/// Statistics for the planner after a table was generated.
pub async fn vacuum_analyze(client: &Client, table: &str) -> Result<()> {
    // Alone: a statement list runs as one transaction, which VACUUM refuses.
    client
        .batch_execute(&format!("VACUUM ANALYZE {table}"))
        .await?;
    Ok(())
}

/// Prints `report`, writes it to `out_dir/file` and drops `schemas`.
pub async fn finish(
    client: &Client,
    out_dir: &Path,
    file: &str,
    report: &str,
    schemas: &[&str],
) -> Result<()> {
    println!("{report}");
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(out_dir.join(file), report)?;
    for schema in schemas {
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
    }
    Ok(())
}
