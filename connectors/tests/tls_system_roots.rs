//! verify-full with no sslrootcert, where the system's CAs do not include
//! the server's self-signed certificate. A test binary of its own: it points
//! the system store at a file of one unrelated CA through SSL_CERT_FILE,
//! which is read once per process.

use std::path::Path;

use connectors::postgres::connect;
use planner::datastores::Datastores;

#[tokio::test]
async fn verify_full_refuses_a_self_signed_certificate_the_system_does_not_trust() {
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unrelated-ca.pem");
    // Before any connection in this process, so the store is read from here.
    std::env::set_var("SSL_CERT_FILE", &ca);
    std::env::remove_var("SSL_CERT_DIR");

    let (client, connection) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=test",
        tokio_postgres::NoTls,
    )
    .await
    .expect("local PostgreSQL at 127.0.0.1:5432 (user postgres, db test)");
    tokio::spawn(connection);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the PostgreSQL server at 127.0.0.1:5432 has ssl off; this test needs it on"
    );

    let text = "datastores:\n  pg: {type: postgres, connection: {host: 127.0.0.1, dbname: test, sslmode: verify-full}}\n";
    let ds = Datastores::parse(
        Path::new("datastores.yaml"),
        text,
        &connectors::registry::types(),
        |_| None,
    )
    .unwrap();
    let e = match connect(&ds.stores["pg"]).await {
        Ok(_) => panic!("connected with a certificate no trusted CA signed"),
        Err(e) => e,
    };
    assert_eq!(
        e.to_string(),
        "cannot connect to PostgreSQL at 127.0.0.1:5432 (datastore \"pg\", database \"test\", user \"postgres\"): sslmode=verify-full: certificate verify failed: self-signed certificate; set sslrootcert to the server's CA file or use sslmode=require"
    );
}
