//! Opening a connection: TLS as the datastore says, the connection driven by
//! a task of its own, and connect errors that never show the password.

use planner::datastores::{redact_url_password, Datastore};

use super::config::{PostgresConnection, SslMode};
use tokio_postgres::{Client, NoTls};

use super::tls;
use crate::{ConnectorError, Result};

/// Opens a connection, with TLS as the datastore's sslmode says. The error
/// names the datastore, host:port and why, and never the password (nor one
/// inside a URL pasted into host or dbname).
pub async fn connect(ds: &Datastore) -> Result<Client> {
    let Some(PostgresConnection {
        name,
        host,
        port,
        user,
        password,
        dbname,
        tls,
        ..
    }) = ds.connection_as::<PostgresConnection>()
    else {
        return Err(ConnectorError::Other(format!(
            "datastore \"{}\" is not postgres",
            ds.name()
        )));
    };
    // host, dbname and user print masked (`Masked`); the whole text is masked
    // again, and the password blotted out, in case the driver quoted it.
    let fail = |reason: String| {
        let text = format!(
            "cannot connect to PostgreSQL at {host}:{port} (datastore \"{name}\", database \"{dbname}\", user \"{user}\"): {reason}"
        );
        let mut text = redact_url_password(&text).into_owned();
        if let Some(p) = password
            .as_ref()
            .map(|p| p.expose())
            .filter(|p| p.len() > 2)
        {
            text = text.replace(p, "***");
        }
        text
    };
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&**host)
        .port(*port)
        .user(&**user)
        .dbname(&**dbname)
        .application_name("synchub")
        // Filters are printed back from their parse with strings in the
        // standard form ('it''s', backslashes literal): a server set to
        // the old escape form must read them the same way.
        .options("-c standard_conforming_strings=on")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(p) = password {
        cfg.password(p.expose());
    }
    let connector = tls::connector(tls).map_err(|e| ConnectorError::Config(fail(e)))?;
    let opened = match connector {
        None => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            spawn_connection(cfg.connect(NoTls).await)
        }
        Some(connector) => {
            cfg.ssl_mode(match tls.sslmode {
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
            spawn_connection(cfg.connect(connector).await)
        }
    };
    let e = match opened {
        Ok(client) => return Ok(client),
        Err(e) => e,
    };
    let Some(reason) = tls::describe_failure(&e, tls, host) else {
        return Err(ConnectorError::Unreachable(fail(describe_connect_error(
            &e,
        ))));
    };
    if tls.sslmode != SslMode::Prefer {
        return Err(ConnectorError::Config(fail(reason)));
    }
    // libpq's prefer, too, goes on in plain when the handshake fails (a
    // server that offers only TLS 1.0, say, which rustls does not speak):
    // the connections that worked before TLS came in keep working.
    tracing::warn!(datastore = %name, "{}; connecting without TLS", redact_url_password(&reason));
    cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    spawn_connection(cfg.connect(NoTls).await)
        .map_err(|e| ConnectorError::Unreachable(fail(describe_connect_error(&e))))
}

/// The client, its connection driven by a task of its own.
fn spawn_connection<S, T>(
    opened: std::result::Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
) -> std::result::Result<Client, tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = opened?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

fn describe_connect_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}
