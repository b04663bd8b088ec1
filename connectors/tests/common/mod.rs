//! Shared by the connector tests: the local PostgreSQL, a schema per test
//! dropped even when the test fails, and a datastore pointing at it.
#![allow(dead_code)]

use planner::datastores::Datastore;
use tokio_postgres::{Client, NoTls};

pub const PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

pub async fn connect() -> Client {
    let (client, connection) = tokio_postgres::connect(PG, NoTls)
        .await
        .expect("local PostgreSQL at 127.0.0.1:5432 (user postgres, db test)");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A schema of its own, dropped when this goes out of scope (also on panic).
pub struct Schema(pub String);

impl Schema {
    /// `<label>_<pid>`, created empty.
    pub async fn create(client: &Client, label: &str) -> Schema {
        let name = format!("{label}_{}", std::process::id());
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await
            .unwrap();
        Schema(name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0);
        // Drop may run inside the test's runtime, which must not block.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async { connect().await.batch_execute(&sql).await })
        })
        .join();
    }
}

pub fn pg_datastore(schema: &str) -> Datastore {
    Datastore::new(
        "pg",
        std::sync::Arc::new(connectors::postgres::PostgresConnection {
            name: "pg".into(),
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            dbname: "test".into(),
            schema: Some(schema.into()),
            tls: Default::default(),
        }),
    )
}

pub fn sqlite_datastore(name: &str, path: &std::path::Path) -> Datastore {
    Datastore::new(
        name,
        std::sync::Arc::new(connectors::sqlite::SqliteConnection {
            path: path.to_path_buf(),
        }),
    )
}

/// A column mapped to itself, of type `ty`.
pub fn column(
    name: &str,
    ty: planner::types::ColumnType,
    unique: bool,
    hash: bool,
) -> planner::model::MappedColumn {
    planner::model::MappedColumn::same_name(name, ty, unique, hash)
}

/// A datastore on the local MariaDB (root, no password), database `dbname`.
pub fn mysql_datastore(dbname: &str) -> Datastore {
    Datastore::new(
        "my",
        std::sync::Arc::new(connectors::mysql::MySqlConnection {
            host: "127.0.0.1".into(),
            port: 3306,
            user: "root".into(),
            password: None,
            dbname: dbname.into(),
        }),
    )
}

/// A MariaDB database of its own, dropped when this goes out of scope
/// (also on panic).
pub struct MySqlDatabase(pub String);

impl MySqlDatabase {
    /// `<label>_<pid>`, created empty.
    pub async fn create(label: &str) -> MySqlDatabase {
        use mysql_async::prelude::Queryable;
        let name = format!("{label}_{}", std::process::id());
        let mut conn = connectors::mysql::connect(&mysql_datastore("test"))
            .await
            .expect("local MariaDB at 127.0.0.1:3306 (root, no password, db test)");
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
            .unwrap();
        conn.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap();
        MySqlDatabase(name)
    }
}

impl Drop for MySqlDatabase {
    fn drop(&mut self) {
        use mysql_async::prelude::Queryable;
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.0);
        // Drop may run inside the test's runtime, which must not block.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    if let Ok(mut conn) = connectors::mysql::connect(&mysql_datastore("test")).await
                    {
                        let _ = conn.query_drop(sql).await;
                    }
                })
        })
        .join();
    }
}

pub fn clickhouse_datastore(database: &str) -> Datastore {
    Datastore::new(
        "ch",
        std::sync::Arc::new(connectors::clickhouse::ClickHouseConnection {
            host: "127.0.0.1".into(),
            port: 8123,
            user: "default".into(),
            password: None,
            database: database.into(),
        }),
    )
}

/// A ClickHouse database of its own, dropped when this goes out of scope
/// (also on panic).
pub struct ClickHouseDatabase(pub String);

impl ClickHouseDatabase {
    /// `<label>_<pid>`, created empty.
    pub async fn create(label: &str) -> ClickHouseDatabase {
        let name = format!("{label}_{}", std::process::id());
        let client = connectors::clickhouse::Client::new(&clickhouse_datastore("default")).unwrap();
        client
            .query(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
            .expect("local ClickHouse at 127.0.0.1:8123 (user default, no password)");
        client
            .query(&format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap();
        ClickHouseDatabase(name)
    }
}

impl Drop for ClickHouseDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.0);
        // Drop may run inside the test's runtime, which must not block.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    if let Ok(client) =
                        connectors::clickhouse::Client::new(&clickhouse_datastore("default"))
                    {
                        let _ = client.query(&sql).await;
                    }
                })
        })
        .join();
    }
}
