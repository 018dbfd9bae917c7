//! rustls client configurations for libpq's sslmodes, root certificates and client
//! certificates.
//!
//! The crate graph holds only the aws-lc-rs provider (object_store's HTTP client needs it, and
//! this crate uses the same one), but every configuration still names it explicitly rather than
//! relying on a process-wide default that an embedding program might set differently.
//!
//! PEM files are parsed with `rustls-pki-types` (`PemObject`); the operating system's trust
//! store is read with `rustls-native-certs`, the rustls project's own loader: it knows each
//! platform's store (the distribution bundle and directories on Linux, the keychain on macOS,
//! the system store on Windows) and honours `SSL_CERT_FILE` / `SSL_CERT_DIR` like OpenSSL does.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::connection::SslMode;
use crate::error::PgError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> PgError {
    PgError::Tls {
        reason: e.to_string(),
    }
}

/// What the server's certificate chain is verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    /// No root file given or found: `verify-ca`/`verify-full` use the bundled Mozilla roots,
    /// `prefer`/`require` do not verify.
    Bundled,
    /// A PEM file (`sslrootcert`, or `~/.postgresql/root.crt`): every sslmode but `prefer`
    /// verifies the chain, as in libpq.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`, `verify-full` only).
    System,
}

/// A client certificate (with any intermediates) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// PEM file of the certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key, PEM or DER.
    pub key: PathBuf,
}

/// The TLS connector for `mode`, or `None` for a plain connection.
pub(crate) fn connector(
    mode: SslMode,
    roots: &Roots,
    client: Option<&ClientCert>,
) -> Result<Option<MakeRustlsConnect>, PgError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::Disable, _) => return Ok(None),
        // libpq: `require` with a root certificate verifies the chain like `verify-ca`.
        (SslMode::Require, Roots::File(_) | Roots::System) => {
            Arc::new(ChainOnly::new(root_store(roots)?, &provider)?)
        }
        // `prefer` never verifies: tokio-postgres cannot fall back to plain text after a failed
        // handshake as libpq does, so verifying would turn `prefer` into a hard failure.
        (SslMode::Prefer, _) | (SslMode::Require, Roots::Bundled) => Arc::new(AcceptAnyCert {
            algorithms: provider.signature_verification_algorithms,
        }),
        (SslMode::VerifyCa, _) => Arc::new(ChainOnly::new(root_store(roots)?, &provider)?),
        (SslMode::VerifyFull, _) => {
            WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(roots)?), provider.clone())
                .build()
                .map_err(tls_err)?
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let (chain, key) = load_client_cert(client)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| PgError::ClientCertificate {
                    path: client.cert.clone(),
                    reason: format!("the certificate and key do not go together: {e}"),
                })?
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The root store for `roots`.
fn root_store(roots: &Roots) -> Result<RootCertStore, PgError> {
    match roots {
        Roots::Bundled => Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        Roots::File(path) => file_roots(path),
        Roots::System => system_roots(),
    }
}

/// The PEM certificates of `path`.
fn file_roots(path: &Path) -> Result<RootCertStore, PgError> {
    let root_err = |reason: String| PgError::RootCertificate {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| root_err(pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| root_err(format!("not a PEM file: {}", pem_error(&e))))?;
    if certs.is_empty() {
        return Err(root_err("no PEM certificate in the file".to_owned()));
    }
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert)
            .map_err(|e| root_err(format!("unusable certificate: {e}")))?;
    }
    Ok(store)
}

/// The operating system's trust store. Unparsable entries are skipped (system bundles carry a
/// few that webpki refuses); an empty result is an error that says where was looked.
fn system_roots() -> Result<RootCertStore, PgError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let mut reason = "no usable certificate in the system trust store".to_owned();
        for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            if let Some(v) = std::env::var_os(var) {
                reason.push_str(&format!(" ({var}={})", Path::new(&v).display()));
            }
        }
        if !loaded.errors.is_empty() {
            let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
            reason.push_str(&format!(": {}", errors.join("; ")));
        } else {
            reason.push_str(
                "; install the CA certificates (e.g. the ca-certificates package) or give \
                 sslrootcert a file",
            );
        }
        return Err(PgError::RootCertificate {
            path: PathBuf::from(crate::connection::SYSTEM_ROOTS),
            reason,
        });
    }
    Ok(store)
}

/// A PEM error in words; I/O errors keep their own text.
fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::Io(io) => io.to_string(),
        pem::Error::NoItemsFound => "no PEM section of the expected kind".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Reads the client certificate chain and key, with libpq's checks on the key file.
fn load_client_cert(
    client: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PgError> {
    let cert_err = |reason: String| PgError::ClientCertificate {
        path: client.cert.clone(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&client.cert)
        .map_err(|e| cert_err(pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not a PEM file: {}", pem_error(&e))))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in the file".to_owned()));
    }
    let key = load_key(&client.key)?;
    Ok((chain, key))
}

/// The private key at `path`: PEM (PKCS#8, PKCS#1, SEC1) or DER. The key's bytes never appear
/// in an error.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PgError> {
    let key_err = |reason: String| PgError::ClientCertificate {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        key_err(if e.kind() == std::io::ErrorKind::NotFound {
            "certificate present, but no private key file at this path (give sslkey)".to_owned()
        } else {
            format!("cannot read the private key: {e}")
        })
    })?;
    if !meta.is_file() {
        return Err(key_err("the private key is not a plain file".to_owned()));
    }
    check_key_permissions(meta.uid(), meta.permissions().mode()).map_err(key_err)?;
    let bytes = std::fs::read(path).map_err(|e| key_err(format!("cannot read the private key: {e}")))?;
    if is_encrypted_pem(&bytes) {
        return Err(key_err(
            "the private key is encrypted, which is not supported (no sslpassword); decrypt it \
             first, e.g. openssl pkey -in client.key -out client.plain.key"
                .to_owned(),
        ));
    }
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN ") {
        return PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
            key_err(match e {
                pem::Error::NoItemsFound => "no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or \
                                             EC PRIVATE KEY section) in the file"
                    .to_owned(),
                other => format!("not a usable PEM private key: {}", pem_error(&other)),
            })
        });
    }
    PrivateKeyDer::try_from(bytes).map_err(|e| key_err(format!("neither a PEM nor a DER private key: {e}")))
}

/// Whether a PEM file holds an encrypted key: PKCS#8 `ENCRYPTED PRIVATE KEY`, or a legacy
/// OpenSSL key with a `Proc-Type: 4,ENCRYPTED` header.
fn is_encrypted_pem(bytes: &[u8]) -> bool {
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    contains(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || contains(b"Proc-Type: 4,ENCRYPTED")
}

/// libpq's rule for the key file: no access for the group or others when owned by the user
/// (mode 0600 or less), group read allowed when owned by root (0640 or less), so that a key
/// can be shared through a root-owned group.
fn check_key_permissions(owner_uid: u32, mode: u32) -> Result<(), String> {
    let mode = mode & 0o777;
    if owner_uid == 0 {
        if mode & 0o037 != 0 {
            return Err(format!(
                "the private key has group or world access (mode {mode:04o}); permissions should \
                 be u=rw,g=r (0640) or less when owned by root"
            ));
        }
    } else if mode & 0o077 != 0 {
        return Err(format!(
            "the private key has group or world access (mode {mode:04o}); permissions should be \
             u=rw (0600) or less"
        ));
    }
    Ok(())
}

/// `require`/`prefer`: encryption without authentication of the server, as libpq does. The
/// handshake signatures are still checked, so the peer must hold the certificate's key.
#[derive(Debug)]
struct AcceptAnyCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: full webpki verification, except that a name mismatch is accepted. webpki checks
/// the chain (and validity dates) before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ChainOnly {
    fn new(roots: RootCertStore, provider: &Arc<CryptoProvider>) -> Result<Self, PgError> {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(tls_err)?;
        Ok(ChainOnly { inner })
    }
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn key_permissions_follow_libpq() {
        assert!(check_key_permissions(1000, 0o100600).is_ok());
        assert!(check_key_permissions(1000, 0o400).is_ok());
        let e = check_key_permissions(1000, 0o640).unwrap_err();
        assert!(e.contains("0640") && e.contains("(0600) or less"), "{e}");
        assert!(check_key_permissions(1000, 0o604).is_err());
        assert!(check_key_permissions(0, 0o640).is_ok());
        let e = check_key_permissions(0, 0o644).unwrap_err();
        assert!(e.contains("0644") && e.contains("0640"), "{e}");
        assert!(check_key_permissions(0, 0o660).is_err());
    }

    #[test]
    fn encrypted_keys_are_recognised() {
        assert!(is_encrypted_pem(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ));
        assert!(is_encrypted_pem(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n"
        ));
        assert!(!is_encrypted_pem(
            b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
        ));
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let e = file_roots(&missing).unwrap_err();
        assert!(
            matches!(&e, PgError::RootCertificate { path, .. } if *path == missing),
            "{e:?}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all\n").unwrap();
        let e = file_roots(&junk).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let key = dir.path().join("k.pem");
        std::fs::write(
            &key,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_key(&key).unwrap_err();
        assert!(e.to_string().contains("no PEM private key"), "{e}");
        std::fs::write(&key, b"\x01\x02garbage").unwrap();
        let e = load_key(&key).unwrap_err();
        assert!(e.to_string().contains("neither a PEM nor a DER"), "{e}");
        let e = load_key(&dir.path().join("absent.key")).unwrap_err();
        assert!(e.to_string().contains("no private key file"), "{e}");
    }
}
