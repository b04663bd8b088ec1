//! TLS for PostgreSQL with rustls (ring), following libpq's `sslmode`:
//! `prefer` and `require` encrypt without checking the certificate (unless
//! `require` has an `sslrootcert`, which makes it verify-ca, as in libpq),
//! `verify-ca` checks the chain, `verify-full` the chain and the host name.
//!
//! `prefer` goes on in plain TCP when the server offers no TLS or the
//! handshake fails, as libpq's does.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::config::{PgTls, SslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector for `tls`, `None` for `sslmode=disable`. `Err` says what in
/// the settings cannot be used (a file that cannot be read, say).
pub(crate) fn connector(tls: &PgTls) -> Result<Option<MakeRustlsConnect>, String> {
    let roots = match (tls.sslmode, &tls.sslrootcert) {
        (SslMode::Disable, _) => return Ok(None),
        (SslMode::Prefer, _) | (SslMode::Require, None) => None,
        (_, Some(file)) => Some(Arc::new(roots_from(file)?)),
        (_, None) => Some(system_roots()?),
    };
    // rustls deprecates ring's provider for lacking post-quantum key
    // exchange; aws-lc-rs has it but needs cmake and clang to build, which
    // every developer and CI run would pay for.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Verifier {
        roots,
        check_name: tls.sslmode == SslMode::VerifyFull,
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match (&tls.sslcert, &tls.sslkey) {
        (Some(cert), Some(key)) => {
            let certs = certificates(cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "sslkey {}: {}",
                    key.display(),
                    pem_error(e, "private key (PKCS#8, PKCS#1 or SEC1)")
                )
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("sslcert and sslkey do not make a client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn pem_error(e: rustls::pki_types::pem::Error, what: &str) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read: {e}"),
        rustls::pki_types::pem::Error::NoItemsFound => format!("holds no PEM {what}"),
        other => format!("not a PEM {what}: {other:?}"),
    }
}

fn certificates(file: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let read = |e| {
        format!(
            "{field} {}: {}",
            file.display(),
            pem_error(e, "certificate")
        )
    };
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(read(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn roots_from(file: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(file, "sslrootcert")? {
        roots.add(cert).map_err(|e| {
            format!(
                "sslrootcert {}: a certificate in it cannot be a trust anchor: {e}",
                file.display()
            )
        })?;
    }
    Ok(roots)
}

/// The operating system's CAs (`/etc/ssl/certs` on Debian), read once.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "no system CA certificates found{why}; set sslrootcert to the server's CA file"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// Checks the server's certificate as far as the sslmode asks.
#[derive(Debug)]
struct Verifier {
    /// `None`: any certificate is taken (prefer, require).
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The server's certificate signed itself and is not in the trusted set:
/// worth a message of its own, since it is what a default install has.
#[derive(Debug)]
struct SelfSigned;

impl std::fmt::Display for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("self-signed certificate")
    }
}

impl std::error::Error for SelfSigned {}

fn is_self_signed(der: &CertificateDer<'_>) -> bool {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(der)
        .is_ok_and(|c| c.tbs_certificate.issuer == c.tbs_certificate.subject)
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                if intermediates.is_empty() && is_self_signed(end_entity) =>
            {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    SelfSigned,
                ))))
            }
            e => e,
        })?;
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    // The handshake's signatures are checked in every mode: without that, a
    // session would not even be bound to the certificate it showed.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a handshake failed, as a person can act on it, when the failure is
/// TLS's; `None` for anything else.
pub(crate) fn describe_failure(
    e: &(dyn std::error::Error + 'static),
    tls: &PgTls,
    host: &str,
) -> Option<String> {
    let mode = tls.sslmode;
    let mut current = Some(e);
    while let Some(err) = current {
        let rustls_error = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = rustls_error {
            return Some(format!("sslmode={mode}: {}", describe_rustls(r, tls, host)));
        }
        // tokio-postgres's own words when the server answers "no TLS".
        if err.to_string() == "server does not support TLS" {
            return Some(format!(
                "sslmode={mode}: the server does not accept TLS connections; turn ssl on in the server or use sslmode=prefer"
            ));
        }
        current = err.source();
    }
    None
}

/// rustls lists a certificate's names as written in Debug (`DnsName("db")`);
/// a person wants `db`.
fn bare_name(presented: &str) -> &str {
    match (presented.find("(\""), presented.rfind("\")")) {
        (Some(start), Some(end)) if start + 2 <= end => &presented[start + 2..end],
        _ => presented,
    }
}

fn describe_rustls(e: &rustls::Error, tls: &PgTls, host: &str) -> String {
    let untrusted = |what: &str| {
        match &tls.sslrootcert {
        None => format!(
            "certificate verify failed: {what}; set sslrootcert to the server's CA file or use sslmode=require"
        ),
        Some(file) => format!(
            "certificate verify failed: {what}: no certificate in sslrootcert {} signed it",
            file.display()
        ),
    }
    };
    let rustls::Error::InvalidCertificate(cert) = e else {
        return format!("TLS handshake failed: {e}");
    };
    match cert {
        CertificateError::Other(OtherError(inner)) if inner.is::<SelfSigned>() => {
            untrusted("self-signed certificate")
        }
        CertificateError::UnknownIssuer => untrusted("unknown issuer"),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names = if presented.is_empty() {
                "no host name".to_string()
            } else {
                presented
                    .iter()
                    .map(|n| format!("\"{}\"", bare_name(n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "certificate verify failed: the certificate is for {names}, not \"{host}\"; connect by a name it lists or use sslmode=verify-ca"
            )
        }
        CertificateError::NotValidForName => format!(
            "certificate verify failed: the certificate is not for \"{host}\"; connect by a name it lists or use sslmode=verify-ca"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate verify failed: the certificate has expired".to_string()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate verify failed: the certificate is not valid yet".to_string()
        }
        other => format!("certificate verify failed: {other}"),
    }
}
