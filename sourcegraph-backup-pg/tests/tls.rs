//! TLS and credentials against a real cluster with certificates from a throwaway CA (made with
//! the `openssl` CLI): every sslmode, a custom root certificate, host-name checking, client
//! certificates with `cert` authentication in `pg_hba.conf`, the OS trust store
//! (`sslrootcert=system`), the defaults of the home directory, and the password file.
//!
//! Whatever depends on the process environment (`SSL_CERT_FILE` for the trust store, `HOME`,
//! `PGPASSFILE`) runs in a child process: the test re-runs its own binary for just that test,
//! with the environment prepared and `SGB_TLS_TEST_CHILD` naming the scenario, and checks that
//! the child passed and reported the scenario as checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sourcegraph_backup_pg::{Database, PgConnectionConfig, PgError, SslMode};
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
    make_certs_with_ca(dir, "sgb test CA");
}

/// [`make_certs`] with a CA named `ca_cn`: a second CA of another name is an unknown issuer,
/// one of the same name a bad signature.
fn make_certs_with_ca(dir: &Path, ca_cn: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let subj = format!("/CN={ca_cn}");
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", &subj];
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

/// A client certificate `<name>.crt` / `<name>.key` (mode 0600) for user `cn`, signed by the CA
/// of `ca_dir`, written to `out`.
fn make_client_cert(ca_dir: &Path, out: &Path, name: &str, cn: &str) {
    let key = out.join(format!("{name}.key"));
    let csr = out.join(format!("{name}.csr"));
    let crt = out.join(format!("{name}.crt"));
    let ext = out.join(format!("{name}.cnf"));
    let subj = format!("/CN={cn}");
    openssl(
        out,
        &[
            "req",
            "-subj",
            &subj,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ],
    );
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        ca_dir,
        &[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ],
    );
    set_mode(&key, 0o600);
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The roles the credential tests log in as: `certuser` only with a client certificate of the
/// throwaway CA over TLS, `pwuser` only with its SCRAM password (over TCP and the socket).
const CERT_USER: &str = "certuser";
const PW_USER: &str = "pwuser";
/// `pwuser`'s password: a `:` and a `\` exercise the password file's escapes.
const PW_PASSWORD: &str = r"pa:ss\word-9f3";
const AUTH_HBA: &[&str] = &[
    "hostssl all certuser 127.0.0.1/32 cert",
    "host    all certuser 127.0.0.1/32 reject",
    "host    all pwuser   127.0.0.1/32 scram-sha-256",
    "local   all pwuser                scram-sha-256",
];

/// A cluster with TLS on (the throwaway CA as `ssl_ca_file`), `hba` prepended to
/// `pg_hba.conf`, and the two roles above. Returns the directory with `ca.crt` and the
/// certificates.
async fn tls_cluster(hba: &[&str]) -> (PgCluster, tempfile::TempDir) {
    let cluster = PgCluster::start().await.unwrap();
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    cluster
        .batch_execute(
            "postgres",
            &format!(
                "SET password_encryption = 'scram-sha-256';
                 CREATE ROLE {CERT_USER} LOGIN;
                 CREATE ROLE {PW_USER} LOGIN PASSWORD '{}';",
                PW_PASSWORD.replace('\'', "''")
            ),
        )
        .await
        .unwrap();
    enable_ssl_with_hba(&cluster, certs.path(), hba).await;
    (cluster, certs)
}

/// Installs the server certificate in the data directory (owned by the cluster's OS user,
/// key mode 0600) and turns `ssl` on with a reload.
async fn enable_ssl(cluster: &PgCluster, certs: &Path) {
    enable_ssl_with_hba(cluster, certs, &[]).await;
}

/// [`enable_ssl`], with the CA as `ssl_ca_file` (client certificates are asked for and checked)
/// and `hba` lines put first in `pg_hba.conf`. The postmaster reloads `pg_hba.conf` in the same
/// reload as the settings, so once new sessions see `ssl = on` the rules are in force too.
async fn enable_ssl_with_hba(cluster: &PgCluster, certs: &Path, hba: &[&str]) {
    let data = cluster.data_dir();
    let owner = std::fs::metadata(data).unwrap();
    if !hba.is_empty() {
        let path = data.join("pg_hba.conf");
        let old = std::fs::read_to_string(&path).unwrap();
        // Writing in place keeps the file's owner and mode.
        std::fs::write(&path, format!("{}\n{old}", hba.join("\n"))).unwrap();
    }
    for name in ["server.crt", "server.key", "ca.crt"] {
        let dst = data.join(name);
        std::fs::copy(certs.join(name), &dst).unwrap();
        std::os::unix::fs::chown(&dst, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // One statement per call: ALTER SYSTEM refuses to run in a multi-statement transaction.
    for sql in [
        "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "ALTER SYSTEM SET ssl_ca_file = 'ca.crt'",
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

// --- client certificates -------------------------------------------------------------------

/// `SELECT current_user` and whether the session is encrypted.
async fn who(config: &PgConnectionConfig) -> Result<(String, bool), PgError> {
    let client = config.connect().await?;
    let row = client
        .query_one(
            "SELECT current_user::text, \
                    coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .await
        .unwrap();
    Ok((row.get(0), row.get(1)))
}

fn cert_url(cluster: &PgCluster, extra: &str) -> PgConnectionConfig {
    PgConnectionConfig::from_url(&format!(
        "postgres://{CERT_USER}@localhost:{}/postgres?{extra}",
        cluster.port()
    ))
    .unwrap()
}

fn q(p: &Path) -> String {
    // Paths from tempfile have no characters that need URL encoding but '/'; keep them readable.
    p.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn client_certificate_authenticates_with_cert_auth() {
    let (cluster, certs) = tls_cluster(AUTH_HBA).await;
    let dir = certs.path();
    make_client_cert(dir, dir, "client", CERT_USER);
    let ca = dir.join("ca.crt");
    let (crt, key) = (dir.join("client.crt"), dir.join("client.key"));

    // URL form, verify-full: the server is verified and the client certificate authenticates.
    let url = cert_url(
        &cluster,
        &format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            q(&ca),
            q(&crt),
            q(&key)
        ),
    );
    assert_eq!(who(&url).await.unwrap(), (CERT_USER.to_owned(), true));
    // key=value form, sslmode=require (chain verified because a root file is given).
    let kv = PgConnectionConfig::from_key_value(&format!(
        "host=127.0.0.1 port={} user={CERT_USER} dbname=postgres sslmode=require \
         sslrootcert='{}' sslcert='{}' sslkey='{}'",
        cluster.port(),
        q(&ca),
        q(&crt),
        q(&key)
    ))
    .unwrap();
    assert_eq!(who(&kv).await.unwrap(), (CERT_USER.to_owned(), true));
    // Environment variables of the codeinsights family.
    let vars: HashMap<String, String> = [
        ("CODEINSIGHTS_PGHOST", "localhost".to_owned()),
        ("CODEINSIGHTS_PGPORT", cluster.port().to_string()),
        ("CODEINSIGHTS_PGUSER", CERT_USER.to_owned()),
        ("CODEINSIGHTS_PGDATABASE", "postgres".to_owned()),
        ("CODEINSIGHTS_PGSSLMODE", "verify-full".to_owned()),
        ("CODEINSIGHTS_PGSSLROOTCERT", q(&ca)),
        ("CODEINSIGHTS_PGSSLCERT", q(&crt)),
        ("CODEINSIGHTS_PGSSLKEY", q(&key)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let from_env =
        PgConnectionConfig::from_env_with(Database::CodeInsights, |k| vars.get(k).cloned()).unwrap();
    assert_eq!(who(&from_env).await.unwrap(), (CERT_USER.to_owned(), true));

    // Without a client certificate the server refuses, and says why.
    let none = cert_url(&cluster, &format!("sslmode=verify-full&sslrootcert={}", q(&ca)));
    let err = who(&none).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, PgError::Connect { .. })
            && text.contains("connection requires a valid client certificate")
            && text.contains("localhost"),
        "{text}"
    );
    // Without TLS the role is rejected outright.
    let plain = cert_url(&cluster, "sslmode=disable");
    let err = who(&plain).await.unwrap_err().to_string();
    assert!(err.contains("rejects connection"), "{err}");

    // A certificate of another CA does not authenticate, nor does one for another user.
    let rogue = tempfile::tempdir().unwrap();
    make_certs_with_ca(rogue.path(), "sgb rogue CA");
    make_client_cert(rogue.path(), dir, "rogue", CERT_USER);
    let err = who(&cert_url(
        &cluster,
        &format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            q(&ca),
            q(&dir.join("rogue.crt")),
            q(&dir.join("rogue.key"))
        ),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
    make_client_cert(dir, dir, "other", "someone_else");
    let err = who(&cert_url(
        &cluster,
        &format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            q(&ca),
            q(&dir.join("other.crt")),
            q(&dir.join("other.key"))
        ),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("certificate authentication failed"), "{err}");

    // Client-side problems are named before any traffic: a key readable by others, an
    // encrypted key, a missing certificate, a certificate without its key.
    let loose = dir.join("loose.key");
    std::fs::copy(&key, &loose).unwrap();
    set_mode(&loose, 0o644);
    let with_key = |k: &Path| {
        cert_url(
            &cluster,
            &format!(
                "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
                q(&ca),
                q(&crt),
                q(k)
            ),
        )
    };
    let err = who(&with_key(&loose)).await.unwrap_err();
    assert!(
        matches!(&err, PgError::ClientCertificate { path, reason }
            if *path == loose && reason.contains("group or world access")),
        "{err:?}"
    );
    let encrypted = dir.join("encrypted.key");
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "client.key",
            "-out",
            "encrypted.key",
            "-passout",
            "pass:not-supported",
        ],
    );
    set_mode(&encrypted, 0o600);
    let err = who(&with_key(&encrypted)).await.unwrap_err();
    assert!(
        matches!(&err, PgError::ClientCertificate { reason, .. } if reason.contains("encrypted")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-supported"));
    let err = who(&with_key(&dir.join("absent.key"))).await.unwrap_err();
    assert!(err.to_string().contains("no private key file"), "{err}");
    let err = who(&cert_url(
        &cluster,
        &format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}",
            q(&ca),
            q(&dir.join("x.crt"))
        ),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PgError::ClientCertificate { reason, .. } if reason.contains("no such file")),
        "{err:?}"
    );
    // A key that does not belong to the certificate.
    let err = who(&with_key(&dir.join("other.key"))).await.unwrap_err();
    assert!(
        matches!(&err, PgError::ClientCertificate { reason, .. }
            if reason.contains("do not go together")),
        "{err:?}"
    );
}

// --- child processes for the process environment ---------------------------------------------

const CHILD_VAR: &str = "SGB_TLS_TEST_CHILD";

/// The scenario this process runs as a child, if it is one.
fn child_scenario() -> Option<String> {
    std::env::var(CHILD_VAR).ok()
}

/// A value the parent passed to the child.
fn child_arg(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the parent test did not set {name}"))
}

/// Re-runs this test binary for test `test` only, as scenario `scenario`, with `env` set and
/// the variables that would change the outcome removed; returns the child's output after
/// checking that it passed and checked the scenario.
fn run_child(test: &str, scenario: &str, env: &[(&str, OsString)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, scenario);
    for var in [
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "PGPASSFILE",
        "PGSSLCERT",
        "PGSSLKEY",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {scenario} failed:\n{text}");
    assert!(
        text.contains(&format!("CHILD CHECKED {scenario}")) && text.contains("1 passed"),
        "child {scenario} did not run its checks:\n{text}"
    );
    text
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

// --- sslrootcert=system ---------------------------------------------------------------------

#[tokio::test]
async fn sslrootcert_system_verifies_against_the_os_trust_store() {
    const TEST: &str = "sslrootcert_system_verifies_against_the_os_trust_store";
    if let Some(scenario) = child_scenario() {
        return system_roots_child(&scenario).await;
    }
    let (cluster, certs) = tls_cluster(&[]).await;
    let other = tempfile::tempdir().unwrap();
    make_certs_with_ca(other.path(), "sgb other CA");
    let port = os(cluster.port().to_string());
    // The throwaway CA is the whole trust store: verify-full succeeds.
    run_child(
        TEST,
        "trusted",
        &[
            ("SSL_CERT_FILE", os(certs.path().join("ca.crt"))),
            ("SGB_TLS_PORT", port.clone()),
        ],
    );
    // Another CA only: the server's certificate is from an unknown issuer.
    run_child(
        TEST,
        "untrusted",
        &[
            ("SSL_CERT_FILE", os(other.path().join("ca.crt"))),
            ("SGB_TLS_PORT", port.clone()),
        ],
    );
    // The machine's real store does not hold the throwaway CA either (or there is none).
    run_child(TEST, "real-store", &[("SGB_TLS_PORT", port)]);
}

async fn system_roots_child(scenario: &str) {
    let port = child_arg("SGB_TLS_PORT");
    let system = |host: &str| {
        PgConnectionConfig::from_url(&format!(
            "postgres://postgres@{host}:{port}/postgres?sslrootcert=system"
        ))
        .unwrap()
    };
    let config = system("localhost");
    assert!(config.uses_system_roots());
    assert_eq!(
        config.ssl_mode(),
        SslMode::VerifyFull,
        "libpq's default with system"
    );
    match scenario {
        "trusted" => {
            assert!(uses_tls(&config).await.unwrap());
            // verify-full checks the name against the system roots too.
            let err = uses_tls(&system("127.0.0.1")).await.unwrap_err().to_string();
            assert!(err.contains("not valid for name"), "{err}");
            // Weaker modes are refused, as in libpq.
            let err = uses_tls(&config.clone().with_ssl_mode(SslMode::Require))
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("may not be used with sslrootcert=system"), "{err}");
        }
        "untrusted" => {
            let err = uses_tls(&config).await.unwrap_err().to_string();
            assert!(err.contains("UnknownIssuer"), "{err}");
        }
        "real-store" => match uses_tls(&config).await.unwrap_err() {
            PgError::Connect { source, .. } => {
                let text = sourcegraph_backup_pg::error::describe(&source);
                assert!(text.contains("UnknownIssuer"), "{text}");
            }
            PgError::RootCertificate { path, reason } => {
                assert_eq!(path, Path::new("system"));
                assert!(reason.contains("system trust store"), "{reason}");
            }
            other => panic!("unexpected error {other:?}"),
        },
        other => panic!("unknown scenario {other}"),
    }
    println!("CHILD CHECKED {scenario}");
}

// --- defaults from the home directory and PGPASSFILE ----------------------------------------

#[tokio::test]
async fn home_directory_defaults_and_pgpassfile() {
    const TEST: &str = "home_directory_defaults_and_pgpassfile";
    if let Some(scenario) = child_scenario() {
        return home_child(&scenario).await;
    }
    let (cluster, certs) = tls_cluster(AUTH_HBA).await;
    let dir = certs.path();
    let home = tempfile::tempdir().unwrap();
    let pg = home.path().join(".postgresql");
    std::fs::create_dir(&pg).unwrap();
    make_client_cert(dir, &pg, "postgresql", CERT_USER);
    std::fs::copy(dir.join("ca.crt"), pg.join("root.crt")).unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{}:postgres:{PW_USER}:{}\n",
            cluster.port(),
            escape_pgpass(PW_PASSWORD)
        ),
    )
    .unwrap();
    set_mode(&pgpass, 0o600);
    let port = os(cluster.port().to_string());
    run_child(
        TEST,
        "home",
        &[("HOME", os(home.path())), ("SGB_TLS_PORT", port.clone())],
    );
    // PGPASSFILE wins over ~/.pgpass: make ~/.pgpass wrong, PGPASSFILE right.
    let right = dir.join("right.pgpass");
    std::fs::copy(&pgpass, &right).unwrap();
    set_mode(&right, 0o600);
    std::fs::write(&pgpass, format!("*:*:*:{PW_USER}:wrong-password\n")).unwrap();
    run_child(
        TEST,
        "pgpassfile",
        &[
            ("HOME", os(home.path())),
            ("PGPASSFILE", os(&right)),
            ("SGB_TLS_PORT", port.clone()),
        ],
    );
    run_child(
        TEST,
        "home-wrong",
        &[("HOME", os(home.path())), ("SGB_TLS_PORT", port)],
    );
}

async fn home_child(scenario: &str) {
    let port = child_arg("SGB_TLS_PORT");
    let pw = PgConnectionConfig::from_url(&format!(
        "postgres://{PW_USER}@127.0.0.1:{port}/postgres?sslmode=disable"
    ))
    .unwrap();
    assert!(!pw.has_password());
    match scenario {
        "home" => {
            // No sslrootcert, sslcert or sslkey: ~/.postgresql/root.crt verifies the server
            // (the Mozilla roots would not), postgresql.crt/.key authenticate.
            let cert = PgConnectionConfig::from_url(&format!(
                "postgres://{CERT_USER}@localhost:{port}/postgres?sslmode=verify-full"
            ))
            .unwrap();
            assert_eq!(cert.ssl_cert(), None);
            assert_eq!(who(&cert).await.unwrap(), (CERT_USER.to_owned(), true));
            // ~/.pgpass supplies the password.
            assert_eq!(who(&pw).await.unwrap(), (PW_USER.to_owned(), false));
        }
        "pgpassfile" => {
            assert_eq!(who(&pw).await.unwrap(), (PW_USER.to_owned(), false));
        }
        "home-wrong" => {
            let err = who(&pw).await.unwrap_err().to_string();
            assert!(err.contains("password authentication failed"), "{err}");
            assert!(!err.contains("wrong-password"), "{err}");
        }
        other => panic!("unknown scenario {other}"),
    }
    println!("CHILD CHECKED {scenario}");
}

// --- the password file ---------------------------------------------------------------------

/// `\` and `:` escaped for a password-file field.
fn escape_pgpass(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

fn write_pgpass(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap();
    set_mode(path, mode);
}

fn pw_url(cluster: &PgCluster, password: Option<&str>, passfile: &Path) -> PgConnectionConfig {
    let userinfo = match password {
        Some(p) => format!("{PW_USER}:{p}"),
        None => PW_USER.to_owned(),
    };
    PgConnectionConfig::from_url(&format!(
        "postgres://{userinfo}@127.0.0.1:{}/postgres?sslmode=disable&passfile={}",
        cluster.port(),
        q(passfile)
    ))
    .unwrap()
}

#[tokio::test]
async fn pgpass_via_pgpassfile_supplies_the_password() {
    let (cluster, _certs) = tls_cluster(AUTH_HBA).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    write_pgpass(
        &file,
        &format!(
            "127.0.0.1:{}:postgres:{PW_USER}:{}\n",
            cluster.port(),
            escape_pgpass(PW_PASSWORD)
        ),
        0o600,
    );
    // PGPASSFILE among the variables of the frontend family, no password anywhere.
    let vars: HashMap<String, String> = [
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", cluster.port().to_string()),
        ("PGUSER", PW_USER.to_owned()),
        ("PGDATABASE", "postgres".to_owned()),
        ("PGSSLMODE", "disable".to_owned()),
        ("PGPASSFILE", q(&file)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = PgConnectionConfig::from_env_with(Database::Frontend, |k| vars.get(k).cloned()).unwrap();
    assert!(!config.has_password());
    assert_eq!(config.passfile(), Some(file.as_path()));
    assert_eq!(who(&config).await.unwrap(), (PW_USER.to_owned(), false));
    // The password is nowhere in what the config shows.
    for text in [format!("{config}"), format!("{config:?}")] {
        assert!(!text.contains("pa:ss"), "{text}");
    }

    // The same connection without the file: the server asks for a password we do not have.
    let missing = pw_url(&cluster, None, &dir.path().join("absent"));
    let err = who(&missing).await.unwrap_err().to_string();
    assert!(err.contains("password missing"), "{err}");
    // An empty password in the URL counts as none: the file is read.
    assert_eq!(who(&pw_url(&cluster, Some(""), &file)).await.unwrap().0, PW_USER);
    // A password given explicitly wins over the file.
    write_pgpass(&file, &format!("*:*:*:{PW_USER}:wrong-from-file\n"), 0o600);
    let err = who(&pw_url(&cluster, None, &file)).await.unwrap_err().to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrong-from-file"), "{err}");
    let explicit = pw_url(&cluster, Some("pa%3Ass%5Cword-9f3"), &file);
    assert_eq!(who(&explicit).await.unwrap().0, PW_USER);
}

#[tokio::test]
async fn pgpass_wildcards_escapes_and_socket_directory() {
    let (cluster, _certs) = tls_cluster(AUTH_HBA).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    let port = cluster.port();
    let socket = cluster.socket_dir().to_str().unwrap().to_owned();
    let password = escape_pgpass(PW_PASSWORD);
    write_pgpass(
        &file,
        &format!(
            "# lines that do not match come first\n\
             127.0.0.1:{other}:*:*:wrong-port\n\
             127.0.0.1:*:template1:*:wrong-db\n\
             *:*:*:postgres:wrong-user\n\
             {socket}:{port}:*:{PW_USER}:{password}\n\
             127.0.0.1:{port}:*:*:{password}:trailing-fields-are-ignored\n",
            other = port.wrapping_add(1),
            socket = escape_pgpass(&socket),
        ),
        0o600,
    );
    assert_eq!(
        who(&pw_url(&cluster, None, &file)).await.unwrap(),
        (PW_USER.to_owned(), false)
    );
    // Over the Unix socket, a socket directory that is not a default is matched as its path
    // (the only line that names it; the 127.0.0.1 line does not match a socket).
    let via_socket = PgConnectionConfig::from_key_value(&format!(
        "host='{socket}' port={port} user={PW_USER} dbname=postgres passfile='{}'",
        q(&file)
    ))
    .unwrap();
    assert!(via_socket.is_unix_socket());
    assert_eq!(who(&via_socket).await.unwrap().0, PW_USER);
    // Only wildcard lines: the password still has to be the right one.
    write_pgpass(&file, "*:*:*:*:wrong\n", 0o600);
    let err = who(&via_socket).await.unwrap_err().to_string();
    assert!(err.contains("password authentication failed"), "{err}");
}

#[tokio::test]
async fn pgpass_with_group_or_world_access_is_ignored() {
    let (cluster, _certs) = tls_cluster(AUTH_HBA).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    let line = format!("*:*:*:{PW_USER}:{}\n", escape_pgpass(PW_PASSWORD));
    let config = pw_url(&cluster, None, &file);
    for mode in [0o644, 0o640, 0o604] {
        write_pgpass(&file, &line, mode);
        let err = who(&config).await.unwrap_err().to_string();
        assert!(err.contains("password missing"), "mode {mode:o}: {err}");
    }
    // The same file with mode 0600 is read: the refusal above was the permissions.
    set_mode(&file, 0o600);
    assert_eq!(who(&config).await.unwrap().0, PW_USER);
}
