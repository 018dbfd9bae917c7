//! TLS against a real cluster with a certificate from a throwaway CA (made with the `openssl`
//! CLI): every sslmode, a custom root certificate, and host-name checking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sourcegraph_backup_pg::{PgConnectionConfig, PgError, SslMode};
use sourcegraph_backup_testkit::PgCluster;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}); install it (apt-get install openssl) to run TLS tests")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for DNS name `localhost` only (no IP SAN), signed by it.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=sgb test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
}

/// Installs the server certificate in the data directory (owned by the cluster's OS user,
/// key mode 0600) and turns `ssl` on with a reload.
async fn enable_ssl(cluster: &PgCluster, certs: &Path) {
    let data = cluster.data_dir();
    let owner = std::fs::metadata(data).unwrap();
    for name in ["server.crt", "server.key"] {
        let dst = data.join(name);
        std::fs::copy(certs.join(name), &dst).unwrap();
        std::os::unix::fs::chown(&dst, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // One statement per call: ALTER SYSTEM refuses to run in a multi-statement transaction.
    for sql in [
        "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
    ] {
        cluster.batch_execute("postgres", sql).await.unwrap();
    }
    // The reload is asynchronous: wait until new sessions see it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let client = cluster.connect("postgres").await.unwrap();
        let row = client.query_one("SHOW ssl", &[]).await.unwrap();
        if row.get::<_, String>(0) == "on" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ssl did not turn on; see {:?}",
            cluster.log_path()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(cluster: &PgCluster, host: &str, mode: &str, root: Option<&Path>) -> PgConnectionConfig {
    let mut url = format!(
        "postgres://postgres@{host}:{}/postgres?sslmode={mode}",
        cluster.port()
    );
    if let Some(root) = root {
        url.push_str(&format!("&sslrootcert={}", root.display()));
    }
    PgConnectionConfig::from_url(&url).unwrap()
}

async fn uses_tls(config: &PgConnectionConfig) -> Result<bool, PgError> {
    let client = config.connect().await?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn every_sslmode_against_a_tls_server() {
    let cluster = PgCluster::start().await.unwrap();

    // Before TLS is on: prefer falls back to plain text, require fails.
    assert!(!uses_tls(&config(&cluster, "127.0.0.1", "prefer", None))
        .await
        .unwrap());
    let err = uses_tls(&config(&cluster, "127.0.0.1", "require", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not support TLS"), "{err}");

    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    enable_ssl(&cluster, certs.path()).await;
    let ca = certs.path().join("ca.crt");

    assert!(!uses_tls(&config(&cluster, "127.0.0.1", "disable", None))
        .await
        .unwrap());
    assert!(uses_tls(&config(&cluster, "127.0.0.1", "prefer", None))
        .await
        .unwrap());
    // require: encrypted, certificate not checked (issued by an unknown CA, for another name).
    assert!(uses_tls(&config(&cluster, "127.0.0.1", "require", None))
        .await
        .unwrap());
    // verify-ca: chain checked against our root, name not (the cert names only localhost).
    assert!(uses_tls(&config(&cluster, "127.0.0.1", "verify-ca", Some(&ca)))
        .await
        .unwrap());
    // verify-full: chain and name.
    let full = config(&cluster, "localhost", "verify-full", Some(&ca));
    assert_eq!(full.ssl_mode(), SslMode::VerifyFull);
    assert!(uses_tls(&full).await.unwrap());

    // Failures: wrong name, unknown issuer (Mozilla roots), missing root file.
    let err = uses_tls(&config(&cluster, "127.0.0.1", "verify-full", Some(&ca)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("verify-full") && text.contains("not valid for name"),
        "{text}"
    );
    let err = uses_tls(&config(&cluster, "localhost", "verify-ca", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // require with a root certificate verifies the chain (libpq's rule): the server cert is
    // not signed by this other CA.
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path());
    let err = uses_tls(&config(
        &cluster,
        "localhost",
        "require",
        Some(&other.path().join("ca.crt")),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
    let missing = certs.path().join("nope.crt");
    let err = uses_tls(&config(&cluster, "localhost", "verify-ca", Some(&missing)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PgError::RootCertificate { path, .. } if *path == missing),
        "{err:?}"
    );
}
