//! TLS against the local PostgreSQL, the real server: each sslmode connects
//! or is refused as libpq's would be, and the server says whether the session
//! is encrypted. The server must have ssl on with a self-signed certificate
//! (Debian's default, the "snakeoil" one); if it has not, these tests fail
//! saying so rather than pass without testing anything.

mod common;

use std::path::{Path, PathBuf};

use connectors::postgres::connect;
use connectors::ConnectorError;
use planner::datastores::{Datastore, Datastores};
use x509_cert::der::Decode;

/// The server's certificate and key files, checked to be usable here.
struct ServerTls {
    cert: PathBuf,
    key: PathBuf,
    /// The DNS names the certificate is for.
    names: Vec<String>,
}

async fn server_tls() -> ServerTls {
    let client = common::connect().await;
    let setting = |name: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one(&format!("SHOW {name}"), &[]).await;
            row.unwrap_or_else(|e| panic!("SHOW {name}: {e}"))
                .get::<_, String>(0)
        }
    };
    let ssl = setting("ssl").await;
    assert_eq!(
        ssl, "on",
        "the PostgreSQL server at 127.0.0.1:5432 has ssl off; these tests need it on (ssl = on in postgresql.conf, as Debian's package sets it)"
    );
    let cert = PathBuf::from(setting("ssl_cert_file").await);
    let key = PathBuf::from(setting("ssl_key_file").await);
    for file in [&cert, &key] {
        if let Err(e) = std::fs::read(file) {
            panic!(
                "cannot read the server's {} ({e}); run the tests as root or as a member of ssl-cert",
                file.display()
            );
        }
    }
    let pem = std::fs::read_to_string(&cert).unwrap();
    let der = pem_to_der(&pem);
    let parsed = x509_cert::Certificate::from_der(&der).expect("the server certificate parses");
    assert_eq!(
        parsed.tbs_certificate.issuer,
        parsed.tbs_certificate.subject,
        "{} is not self-signed; these tests take the server's certificate as its own CA",
        cert.display()
    );
    ServerTls {
        cert,
        key,
        names: dns_names(&parsed),
    }
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("a PEM certificate")
        .to_vec()
}

fn dns_names(cert: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let Some(extensions) = &cert.tbs_certificate.extensions else {
        return Vec::new();
    };
    extensions
        .iter()
        .filter(|e| e.extn_id == x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
        .filter_map(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).ok())
        .flat_map(|san| san.0)
        .filter_map(|n| match n {
            GeneralName::DnsName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

/// The names as the refusal lists them.
fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "no host name".to_string();
    }
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A datastore `pg` with `connection` (a YAML flow mapping's inside).
fn datastore(connection: &str) -> Datastore {
    let text =
        format!("datastores:\n  pg:\n    type: postgres\n    connection: {{{connection}}}\n");
    let ds = Datastores::parse(
        Path::new("/nowhere/datastores.yaml"),
        &text,
        &connectors::registry::types(),
        |_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ds.stores["pg"].clone()
}

/// What the server says of this session: is it encrypted?
async fn session_is_encrypted(ds: &Datastore) -> bool {
    let client = connect(ds).await.unwrap_or_else(|e| panic!("{e}"));
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn refusal(ds: &Datastore) -> ConnectorError {
    match connect(ds).await {
        Ok(_) => panic!("connected, but should have been refused: {ds:?}"),
        Err(e) => e,
    }
}

const AT: &str = "cannot connect to PostgreSQL at 127.0.0.1:5432 (datastore \"pg\", database \"test\", user \"postgres\")";

#[tokio::test]
async fn require_and_prefer_encrypt_disable_does_not() {
    server_tls().await;
    let base = "host: 127.0.0.1, user: postgres, dbname: test";
    assert!(session_is_encrypted(&datastore(&format!("{base}, sslmode: require"))).await);
    // prefer is the default, as in libpq, and the server offers TLS.
    assert!(session_is_encrypted(&datastore(base)).await);
    assert!(session_is_encrypted(&datastore(&format!("{base}, sslmode: prefer"))).await);
    assert!(!session_is_encrypted(&datastore(&format!("{base}, sslmode: disable"))).await);
    // The same through a URL.
    assert!(
        session_is_encrypted(&datastore(
            "url: 'postgresql://postgres@127.0.0.1:5432/test?sslmode=require'"
        ))
        .await
    );
    assert!(
        !session_is_encrypted(&datastore(
            "url: 'postgres://postgres@127.0.0.1/test?sslmode=disable'"
        ))
        .await
    );
}

/// Without sslrootcert the system's CAs decide. Debian links the snakeoil
/// certificate into /etc/ssl/certs, so there it is trusted and refused only
/// for its host name; where it is not in the store it is refused as
/// self-signed (`tls_system_roots.rs` makes sure of that case).
#[tokio::test]
async fn verify_without_sslrootcert_checks_against_the_system_cas() {
    let tls = server_tls().await;
    let der = pem_to_der(&std::fs::read_to_string(&tls.cert).unwrap());
    let in_store = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .any(|c| c.as_ref() == der.as_slice());
    let ds = datastore("host: 127.0.0.1, dbname: test, sslmode: verify-full");
    let e = refusal(&ds).await;
    let reason = if in_store {
        format!(
            "the certificate is for {}, not \"127.0.0.1\"; connect by a name it lists or use sslmode=verify-ca",
            quoted(&tls.names)
        )
    } else {
        "self-signed certificate; set sslrootcert to the server's CA file or use sslmode=require"
            .to_string()
    };
    assert_eq!(
        e.to_string(),
        format!("{AT}: sslmode=verify-full: certificate verify failed: {reason}")
    );
    assert!(
        !e.retryable(),
        "a certificate the sslmode refuses stays refused"
    );
    let ds = datastore("host: 127.0.0.1, dbname: test, sslmode: verify-ca");
    if in_store {
        assert!(session_is_encrypted(&ds).await);
    } else {
        assert_eq!(
            refusal(&ds).await.to_string(),
            format!("{AT}: sslmode=verify-ca: certificate verify failed: {reason}")
        );
    }
}

#[tokio::test]
async fn verify_ca_with_the_servers_certificate_connects() {
    let tls = server_tls().await;
    let ds = datastore(&format!(
        "host: 127.0.0.1, dbname: test, sslmode: verify-ca, sslrootcert: '{}'",
        tls.cert.display()
    ));
    assert!(session_is_encrypted(&ds).await);
    // require with sslrootcert checks the chain like verify-ca (libpq does).
    let ds = datastore(&format!(
        "host: 127.0.0.1, dbname: test, sslmode: require, sslrootcert: '{}'",
        tls.cert.display()
    ));
    assert!(session_is_encrypted(&ds).await);
}

#[tokio::test]
async fn verify_full_checks_the_host_name() {
    let tls = server_tls().await;
    // The certificate names hosts, never 127.0.0.1 (Debian's make-ssl-cert
    // writes DNS names only).
    let ds = datastore(&format!(
        "host: 127.0.0.1, dbname: test, sslmode: verify-full, sslrootcert: '{}'",
        tls.cert.display()
    ));
    let names = quoted(&tls.names);
    assert_eq!(
        refusal(&ds).await.to_string(),
        format!("{AT}: sslmode=verify-full: certificate verify failed: the certificate is for {names}, not \"127.0.0.1\"; connect by a name it lists or use sslmode=verify-ca")
    );
    // By a name the certificate lists it connects, where that name is this
    // machine (the snakeoil certificate's is the host's name or localhost).
    if tls.names.iter().any(|n| n == "localhost") {
        let ds = datastore(&format!(
            "host: localhost, dbname: test, sslmode: verify-full, sslrootcert: '{}'",
            tls.cert.display()
        ));
        assert!(session_is_encrypted(&ds).await);
    } else {
        eprintln!(
            "note: the server's certificate is for {names}, not localhost: verify-full's success is not tried"
        );
    }
}

#[tokio::test]
async fn an_unrelated_ca_refuses_the_server() {
    server_tls().await;
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unrelated-ca.pem");
    let ds = datastore(&format!(
        "host: 127.0.0.1, dbname: test, sslmode: verify-ca, sslrootcert: '{}'",
        ca.display()
    ));
    assert_eq!(
        refusal(&ds).await.to_string(),
        format!(
            "{AT}: sslmode=verify-ca: certificate verify failed: self-signed certificate: no certificate in sslrootcert {} signed it",
            ca.display()
        )
    );
}

#[tokio::test]
async fn certificate_files_that_cannot_be_used_are_named() {
    let tls = server_tls().await;
    let e = refusal(&datastore(
        "host: 127.0.0.1, dbname: test, sslmode: verify-ca, sslrootcert: /nonexistent/ca.pem",
    ))
    .await;
    assert_eq!(
        e.to_string(),
        format!("{AT}: sslrootcert /nonexistent/ca.pem: cannot read: No such file or directory (os error 2)")
    );
    assert!(matches!(e, ConnectorError::Config(_)), "{e:?}");
    // A certificate where the key should be.
    let e = refusal(&datastore(&format!(
        "host: 127.0.0.1, dbname: test, sslmode: require, sslcert: '{0}', sslkey: '{0}'",
        tls.cert.display()
    )))
    .await;
    assert_eq!(
        e.to_string(),
        format!(
            "{AT}: sslkey {}: holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            tls.cert.display()
        )
    );
}

/// The server asks for no client certificate, so this shows the pair loads
/// and goes along with the handshake, not that the server checked it.
#[tokio::test]
async fn a_client_certificate_is_offered() {
    let tls = server_tls().await;
    let ds = datastore(&format!(
        "host: 127.0.0.1, dbname: test, sslmode: require, sslcert: '{}', sslkey: '{}'",
        tls.cert.display(),
        tls.key.display()
    ));
    assert!(session_is_encrypted(&ds).await);
}
