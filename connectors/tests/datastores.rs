//! Datastores files read through the connector registry: substitution,
//! each connector's own `connection:` type, and resolution.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use connectors::postgres::{PgTls, PostgresConnection, SslMode};
use connectors::sqlite::SqliteConnection;
use planner::datastores::{redact_url_password, Masked};
use planner::error::Result;
use planner::{Datastore, Datastores, Secret};

fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Datastores> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Datastores::parse(
        Path::new("/conf/ds.yaml"),
        text,
        &connectors::registry::types(),
        move |v| vars.get(v).cloned(),
    )
}

fn store(text: &str, vars: &[(&str, &str)]) -> Datastore {
    let ds = parse_with(text, vars).unwrap();
    ds.stores.into_values().next().unwrap()
}

/// The PostgreSQL connection a datastore resolved to.
fn pg(ds: &Datastore) -> PostgresConnection {
    ds.connection_as::<PostgresConnection>()
        .expect("postgres")
        .clone()
}

#[test]
fn substitutes_and_reports_missing_vars() {
    let ds = store(
        "datastores:\n  pg:\n    type: postgres\n    connection:\n      host: ${H}\n      port: ${P}\n      dbname: ${H}-${H}\n      user: ${U:-fallback}\n      # a comment: ${NEVER_LOOKED_UP}\n      schema: ${S:-}\n",
        &[("H", "v"), ("P", "6543")],
    );
    let PostgresConnection {
        host,
        port,
        dbname,
        user,
        schema,
        ..
    } = pg(&ds);
    assert_eq!(
        (&*host, port, &*dbname, &*user),
        ("v", 6543, "v-v", "fallback")
    );
    assert_eq!(schema, None);

    let err = parse_with(
        "datastores:\n  pg:\n    type: postgres\n    connection:\n      dbname: test\n      password: ${NOPE}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/conf/ds.yaml:6: environment variable NOPE is not set; export it or edit the file"
    );
    let err = parse_with(
        "datastores:\n  pg:\n    type: postgres\n    connection: {dbname: test, port: \"${NOPE}\"}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/conf/ds.yaml:4: environment variable NOPE is not set; export it or edit the file"
    );
}

/// Whatever bytes a variable holds arrive as they are: nothing in them is
/// read as YAML.
#[test]
fn values_arrive_verbatim_and_inject_nothing() {
    let nasty = [
        "pa\"ss",
        "back\\slash",
        "\\x50",
        "line\nbreak",
        "x\", schema: \"evil",
        "x', schema: 'evil",
        "a: b # c",
        "{[,]} & *alias !tag %",
        "${OTHER}",
        " lead and trail ",
    ];
    for value in nasty {
        for quoting in ["${V}", "\"${V}\"", "'${V}'"] {
            let text = format!(
                "datastores:\n  pg:\n    type: postgres\n    connection:\n      dbname: {quoting}\n      password: {quoting}\n      host: {quoting}\n"
            );
            let ds = store(&text, &[("V", value), ("OTHER", "no")]);
            let PostgresConnection {
                dbname,
                password,
                host,
                schema,
                ..
            } = pg(&ds);
            assert_eq!(&*dbname, value, "{quoting}");
            assert_eq!(&*host, value, "{quoting}");
            assert_eq!(password.unwrap().expose(), value, "{quoting}");
            assert_eq!(schema, None, "{value} injected a schema");
        }
    }
}

#[test]
fn url_combines_with_fields_the_fields_winning() {
    let ds = store(
        "datastores:\n  pg:\n    type: postgres\n    connection:\n      url: ${DATABASE_URL}\n      dbname: other\n      schema: s\n",
        &[(
            "DATABASE_URL",
            "postgresql://app:p%40ss@db.example:6543/shop?sslmode=verify-ca&sslrootcert=ca.pem",
        )],
    );
    assert_eq!(
        pg(&ds),
        PostgresConnection {
            name: "pg".into(),
            host: Masked::from("db.example"),
            port: 6543,
            user: Masked::from("app"),
            password: Some(Secret::new("p@ss")),
            dbname: Masked::from("other"),
            schema: Some("s".into()),
            tls: PgTls {
                sslmode: SslMode::VerifyCa,
                sslrootcert: Some(PathBuf::from("/conf/ca.pem")),
                sslcert: None,
                sslkey: None,
            },
        }
    );
    let ds = store(
        "datastores:\n  pg:\n    type: postgres\n    connection: {url: 'postgres://u:pw@h/db?sslmode=require', host: h2, port: 1, user: u2, password: pw2, sslmode: disable}\n",
        &[],
    );
    let PostgresConnection {
        host,
        port,
        user,
        password,
        dbname,
        tls,
        ..
    } = pg(&ds);
    assert_eq!((&*host, port, &*user, &*dbname), ("h2", 1, "u2", "db"));
    assert_eq!(password.unwrap().expose(), "pw2");
    assert_eq!(tls.sslmode, SslMode::Disable);
}

#[test]
fn tls_fields_resolve_against_the_file() {
    let ds = store(
        "datastores:\n  pg:\n    type: postgres\n    connection: {dbname: d, sslmode: verify-full, sslrootcert: certs/ca.pem, sslcert: /abs/c.pem, sslkey: k.pem}\n",
        &[],
    );
    let PostgresConnection { tls, .. } = pg(&ds);
    assert_eq!(
        tls,
        PgTls {
            sslmode: SslMode::VerifyFull,
            sslrootcert: Some("/conf/certs/ca.pem".into()),
            sslcert: Some("/abs/c.pem".into()),
            sslkey: Some("/conf/k.pem".into()),
        }
    );
    let PostgresConnection { tls, .. } = pg(&store(
        "datastores:\n  pg: {type: postgres, connection: {dbname: d}}\n",
        &[],
    ));
    assert_eq!(tls, PgTls::default());
    assert_eq!(tls.sslmode, SslMode::Prefer);
}

#[test]
fn bad_connections_name_datastore_and_field_never_the_password() {
    let err = parse_with(
        "datastores:\n  pg:\n    type: postgres\n    connection: {url: 'postgresql://u:hunter2@h:5x/db?sslmode=verify'}\n  pg2:\n    type: postgres\n    connection: {url: 'postgresql://h/db?sslmode=verify', sslcert: c.pem}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/conf/ds.yaml: datastores.pg.connection.url: not a PostgreSQL URL: the port must be a number from 1 to 65535\n\
         /conf/ds.yaml: datastores.pg2.connection.url: unknown sslmode \"verify\"; valid: disable, prefer, require, verify-ca, verify-full\n\
         /conf/ds.yaml: datastores.pg2.connection.sslkey: sslcert needs sslkey, the client certificate's private key"
    );
    // Each connector reads its own connection type: a field of another's
    // is refused at its line.
    let err = parse_with(
        "datastores:\n  lite:\n    type: sqlite\n    connection: {path: a.db, sslmode: require}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/conf/ds.yaml:4:30: unknown field \"sslmode\" in datastores.lite.connection; valid fields: path"
    );
    let lite = store(
        "datastores:\n  lite: {type: sqlite, connection: {path: a.db}}\n",
        &[],
    );
    assert_eq!(
        lite.connection_as::<SqliteConnection>().unwrap().path,
        PathBuf::from("/conf/a.db")
    );
    // serde quotes a value of the wrong type; a URL in it is masked.
    let err = parse_with(
        "datastores:\n  pg:\n    type: postgres\n    connection: postgresql://u:hunter2@h/db\n",
        &[],
    )
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("postgresql://u:***@h/db"), "{err}");
    let err = parse_with(
        "datastores:\n  pg:\n    type: postgres\n    connection: {dbname: d, port: hunter2}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/conf/ds.yaml:4:35: invalid YAML: datastores.pg.connection.port: port must be a number from 1 to 65535"
    );
}

#[test]
fn every_printed_form_masks_passwords() {
    let ds = store(
        "datastores:\n  pg:\n    type: postgres\n    connection: {host: 'postgresql://u:hunter2@h/db', dbname: 'postgres://x:hunter3@h', user: 'u', password: hunter4}\n",
        &[],
    );
    let debug = format!("{ds:?}");
    let json = serde_json::to_string(&ds).unwrap();
    for text in [&debug, &json] {
        for secret in ["hunter2", "hunter3", "hunter4"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    assert_eq!(
        json,
        r#"{"type":"postgres","name":"pg","dbname":"postgres://x:***@h","host":"postgresql://u:***@h/db","password":"***","port":5432,"schema":null,"sslmode":"prefer","user":"u"}"#
    );
    let PostgresConnection { host, .. } = pg(&ds);
    assert_eq!(host.to_string(), "postgresql://u:***@h/db");
    assert_eq!(&*host, "postgresql://u:hunter2@h/db");
}

#[test]
fn redacts_url_passwords_in_any_text() {
    let cases = [
        ("plain host:5432", "plain host:5432"),
        (
            "at postgresql://u:pw@h:1/db now",
            "at postgresql://u:***@h:1/db now",
        ),
        ("postgres://u@h/db", "postgres://u@h/db"),
        ("x=\"mysql://u:p/w@d@h\", y", "x=\"mysql://u:***@h\", y"),
        (
            "a https://h/x:y b postgresql://u:s@h",
            "a https://h/x:y b postgresql://u:***@h",
        ),
        ("no scheme ://u:p@h", "no scheme ://u:***@h"),
    ];
    for (text, want) in cases {
        assert_eq!(redact_url_password(text), want);
    }
    assert!(matches!(redact_url_password("no url"), Cow::Borrowed(_)));
}

#[test]
fn secret_never_prints() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s} {s:?}"), "*** ***");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
}
