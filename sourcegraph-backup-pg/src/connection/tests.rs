#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use super::*;

const SECRET: &str = "s3cr3t-Pa55";

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn reason(e: &PgError) -> String {
    e.to_string()
}

#[test]
fn url_full() {
    let c = PgConnectionConfig::from_url(&format!(
        "postgres://sg:{SECRET}@db.example.com:6432/sg?sslmode=verify-ca&sslrootcert=/etc/ca.pem\
         &connect_timeout=7&application_name=mine"
    ))
    .unwrap();
    assert_eq!(c.host(), "db.example.com");
    assert_eq!(c.port(), 6432);
    assert_eq!(c.user(), "sg");
    assert!(c.has_password());
    assert_eq!(c.dbname(), "sg");
    assert_eq!(c.ssl_mode(), SslMode::VerifyCa);
    assert_eq!(c.ssl_root_cert(), Some(Path::new("/etc/ca.pem")));
    assert_eq!(c.application_name(), "mine");
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
    let t = c.to_tokio_config();
    assert_eq!(t.get_password(), Some(SECRET.as_bytes()));
    assert_eq!(t.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
}

#[test]
fn url_percent_encoding_at_in_password_and_socket_host() {
    let c = PgConnectionConfig::from_url("postgresql://us%20er:p@ss%3Aw@%2Fvar%2Frun%2Fpostgresql/my%20db")
        .unwrap();
    assert_eq!(c.user(), "us er");
    assert_eq!(c.to_tokio_config().get_password(), Some(&b"p@ss:w"[..]));
    assert_eq!(c.host(), "/var/run/postgresql");
    assert!(c.is_unix_socket());
    assert_eq!(c.effective_ssl_mode(), SslMode::Disable);
    assert_eq!(c.dbname(), "my db");
    assert!(matches!(
        c.to_tokio_config().get_hosts(),
        [tokio_postgres::config::Host::Unix(p)] if p == Path::new("/var/run/postgresql")
    ));
}

#[test]
fn url_socket_via_query_and_defaults() {
    let c = PgConnectionConfig::from_url("postgres:///sg?host=/tmp/sock&port=5433").unwrap();
    assert_eq!(c.host(), "/tmp/sock");
    assert_eq!(c.port(), 5433);
    let d = PgConnectionConfig::from_url("postgres://u@/").unwrap();
    assert_eq!(d.host(), DEFAULT_HOST);
    assert_eq!(d.port(), DEFAULT_PORT);
    assert_eq!(d.dbname(), "u", "database defaults to the user");
    assert_eq!(d.ssl_mode(), SslMode::Prefer);
    assert!(!d.has_password());
}

#[test]
fn url_multi_host_and_ipv6() {
    let c = PgConnectionConfig::from_url("postgres://u@a:1,[::1]:2,b/db").unwrap();
    assert_eq!(c.hosts(), vec!["a", "::1", "b"]);
    assert_eq!(c.endpoint(), "a:1,::1:2,b:5432/db");
    assert_eq!(
        c.redacted_url(),
        "postgres://u@a:1,[::1]:2,b:5432/db?sslmode=prefer"
    );
}

#[test]
fn key_value_with_quotes_and_escapes() {
    let c = PgConnectionConfig::from_key_value(
        r"host = db port=5433 user='my user' password='it\'s a \\ secret' dbname=sg sslmode=require",
    )
    .unwrap();
    assert_eq!(c.host(), "db");
    assert_eq!(c.port(), 5433);
    assert_eq!(c.user(), "my user");
    assert_eq!(c.to_tokio_config().get_password(), Some(&br"it's a \ secret"[..]));
    assert_eq!(c.dbname(), "sg");
    assert_eq!(c.ssl_mode(), SslMode::Require);
    let empty = PgConnectionConfig::from_key_value("host=h password='' user=u").unwrap();
    assert!(empty.has_password());
}

#[test]
fn from_str_detects_the_form() {
    let a: PgConnectionConfig = "postgres://u@h/d".parse().unwrap();
    let b: PgConnectionConfig = "host=h user=u dbname=d".parse().unwrap();
    assert_eq!(a.endpoint(), b.endpoint());
    assert_eq!(a.user(), b.user());
    assert!("just some text".parse::<PgConnectionConfig>().is_err());
    assert!("mysql://u@h/d".parse::<PgConnectionConfig>().is_err());
}

#[test]
fn redacted_url_round_trips() {
    let c = PgConnectionConfig::from_url(&format!(
        "postgres://sg:{SECRET}@%2Ftmp%2Fs%20p:5433/d%2Fb?sslmode=verify-full&sslrootcert=/a%20b.pem"
    ))
    .unwrap();
    let url = c.redacted_url();
    assert_eq!(
        url,
        "postgres://sg@%2Ftmp%2Fs%20p:5433/d%2Fb?sslmode=verify-full&sslrootcert=%2Fa%20b.pem"
    );
    let back = PgConnectionConfig::from_url(&url).unwrap();
    assert_eq!(back.clone().with_dbname("x").dbname(), "x");
    assert_eq!(back.host(), "/tmp/s p");
    assert_eq!(back.dbname(), "d/b");
    assert_eq!(back.ssl_root_cert(), Some(Path::new("/a b.pem")));
    assert!(!back.has_password());
}

#[test]
fn password_never_in_debug_display_or_errors() {
    let sources = [
        format!("postgres://sg:{SECRET}@h:5432/sg"),
        format!("host=h user=sg password={SECRET} dbname=sg"),
        format!("host=h user=sg password='{SECRET}' dbname=sg"),
    ];
    for s in &sources {
        let c: PgConnectionConfig = s.parse().unwrap();
        for text in [
            format!("{c}"),
            format!("{c:?}"),
            format!("{c:#?}"),
            c.redacted_url(),
            c.endpoint(),
        ] {
            assert!(!text.contains(SECRET), "password leaked in {text}");
        }
        assert!(format!("{c:?}").contains("<redacted>"));
    }
    // Malformed strings that contain the password: the errors must not quote it.
    let bad = [
        format!("postgres://sg:{SECRET}@h:notaport/sg"),
        format!("postgres://sg:{SECRET}%zz@h/sg"),
        format!("postgres://sg:{SECRET}@h/sg?sslmode=bogus"),
        format!("postgres://sg:{SECRET}@h/sg?unknown=1"),
        format!("postgres://sg:{SECRET}@h/sg?novalue"),
        format!("host=h password='{SECRET}"),
        format!("host=h password={SECRET} port=x"),
        format!("host=h password={SECRET} bogus"),
        SECRET.to_owned(),
        format!("http://u:{SECRET}@h/"),
    ];
    for s in &bad {
        let e = s.parse::<PgConnectionConfig>().unwrap_err();
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(SECRET), "password leaked in error {text}");
        }
    }
    let e = PgConnectionConfig::from_env_with(
        Database::Frontend,
        env(&[("PGPASSWORD", SECRET), ("PGPORT", "nope")]),
    )
    .unwrap_err();
    assert!(!format!("{e} {e:?}").contains(SECRET));
}

#[test]
fn bad_input_gives_clear_errors() {
    let cases: &[(&str, &str)] = &[
        ("postgres://u@h:99999/d", "invalid port"),
        ("postgres://u@h/d?sslmode=strict", "unknown sslmode"),
        (
            "postgres://u@h/d?frobnicate=1",
            "unknown connection option \"frobnicate\"",
        ),
        ("host=h sslpassword=x", "sslpassword is not supported"),
        ("host=h sslcrl=/crl.pem", "sslcrl is not supported"),
        (
            "host=h sslrootcert=system sslmode=require",
            "weak sslmode \"require\" may not be used with sslrootcert=system",
        ),
        (
            "postgres://u@h/d?sslmode=verify-ca&sslrootcert=system",
            "use \"verify-full\"",
        ),
        ("host='h", "unterminated quoted value for host"),
        ("host=h dbname", "missing '='"),
        ("=x", "empty key"),
        ("host=a,b port=1,2,3", "3 ports for 2 hosts"),
        ("postgres://u@[::1/d", "unterminated ["),
        ("hello", "expected a postgres:// URL"),
        ("postgres://u@h/d?keepalives=yes", "keepalives must be 0 or 1"),
    ];
    for (input, want) in cases {
        let e = input.parse::<PgConnectionConfig>().unwrap_err();
        assert!(reason(&e).contains(want), "{input}: {e}");
    }
}

#[test]
fn env_frontend_individual_variables() {
    let c = PgConnectionConfig::from_env_with(
        Database::Frontend,
        env(&[
            ("PGHOST", "pgsql"),
            ("PGPORT", "'5433'"),
            ("PGUSER", "sg"),
            ("PGPASSWORD", SECRET),
            ("PGDATABASE", "sgdb"),
            ("PGSSLMODE", "disable"),
            ("PGTZ", "UTC"),
            ("CODEINTEL_PGHOST", "wrong"),
        ]),
    )
    .unwrap();
    assert_eq!(c.host(), "pgsql");
    assert_eq!(c.port(), 5433, "quotes around PGPORT are stripped");
    assert_eq!(c.user(), "sg");
    assert!(c.has_password());
    assert_eq!(c.dbname(), "sgdb");
    assert_eq!(c.ssl_mode(), SslMode::Disable);
}

#[test]
fn env_defaults() {
    let c = PgConnectionConfig::from_env_with(Database::Frontend, env(&[("USER", "alice")])).unwrap();
    assert_eq!(c.host(), "127.0.0.1");
    assert_eq!(c.port(), 5432);
    assert_eq!(c.user(), "alice");
    assert_eq!(c.dbname(), "alice");
    let c = PgConnectionConfig::from_env_with(
        Database::CodeIntel,
        env(&[("CODEINTEL_PGHOST", ""), ("USER", "")]),
    )
    .unwrap();
    assert_eq!(c.host(), "127.0.0.1", "empty counts as unset");
    assert_eq!(c.user(), "postgres");
}

#[test]
fn env_datasource_wins() {
    let c = PgConnectionConfig::from_env_with(
        Database::CodeInsights,
        env(&[
            (
                "CODEINSIGHTS_PGDATASOURCE",
                "postgres://postgres:password@codeinsights-db:5432/postgres",
            ),
            ("CODEINSIGHTS_PGHOST", "ignored"),
            ("CODEINSIGHTS_PGUSER", "ignored"),
            ("PGDATASOURCE", "postgres://frontend@pgsql/sg"),
        ]),
    )
    .unwrap();
    assert_eq!(c.host(), "codeinsights-db");
    assert_eq!(c.user(), "postgres");
    assert_eq!(c.dbname(), "postgres");
    // A key=value DSN works too, and a bad one names the variable.
    let c = PgConnectionConfig::from_env_with(
        Database::Frontend,
        env(&[("PGDATASOURCE", "host=/tmp user=sg dbname=sg"), ("PGHOST", "x")]),
    )
    .unwrap();
    assert_eq!(c.host(), "/tmp");
    let e = PgConnectionConfig::from_env_with(
        Database::CodeIntel,
        env(&[("CODEINTEL_PGDATASOURCE", "postgres://u@h:x/d")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("CODEINTEL_PGDATASOURCE"), "{e}");
}

#[test]
fn env_each_role_reads_its_own_prefix() {
    let vars = env(&[
        ("PGHOST", "pgsql"),
        ("PGUSER", "sg"),
        ("CODEINTEL_PGHOST", "codeintel-db"),
        ("CODEINTEL_PGUSER", "ci"),
        ("CODEINTEL_PGDATABASE", "cidb"),
        ("CODEINSIGHTS_PGHOST", "codeinsights-db"),
        ("CODEINSIGHTS_PGPORT", "6543"),
        ("CODEINSIGHTS_PGSSLMODE", "verify-full"),
    ]);
    let f = PgConnectionConfig::from_env_with(Database::Frontend, &vars).unwrap();
    let ci = PgConnectionConfig::from_env_with(Database::CodeIntel, &vars).unwrap();
    let cs = PgConnectionConfig::from_env_with(Database::CodeInsights, &vars).unwrap();
    assert_eq!((f.host().as_str(), f.user()), ("pgsql", "sg"));
    assert_eq!(
        (ci.host().as_str(), ci.user(), ci.dbname()),
        ("codeintel-db", "ci", "cidb")
    );
    assert_eq!(cs.host(), "codeinsights-db");
    assert_eq!(cs.port(), 6543);
    assert_eq!(cs.ssl_mode(), SslMode::VerifyFull);
    let e = PgConnectionConfig::from_env_with(
        Database::CodeInsights,
        env(&[("CODEINSIGHTS_PGSSLMODE", "sometimes")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("CODEINSIGHTS_PGSSLMODE"), "{e}");
}

#[test]
fn ssl_modes() {
    for m in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
        assert_eq!(m.parse::<SslMode>().unwrap().as_str(), m);
    }
    assert_eq!("allow".parse::<SslMode>().unwrap(), SslMode::Prefer);
}

#[test]
fn with_dbname_keeps_the_server() {
    let c = PgConnectionConfig::from_url("postgres://u:p@h:1/a?sslmode=disable")
        .unwrap()
        .with_dbname("b");
    assert_eq!(c.to_string(), "postgres://u@h:1/b?sslmode=disable");
    assert!(c.has_password());
}

// --- TLS files and the password file ---

#[test]
fn client_certificate_keys_in_both_forms_and_env() {
    let c = PgConnectionConfig::from_url(
        "postgres://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c%20d/client.crt\
         &sslkey=/k.key&passfile=/p/pgpass",
    )
    .unwrap();
    assert_eq!(c.ssl_cert(), Some(Path::new("/c d/client.crt")));
    assert_eq!(c.ssl_key(), Some(Path::new("/k.key")));
    assert_eq!(c.passfile(), Some(Path::new("/p/pgpass")));
    assert!(!c.uses_system_roots());
    let url = c.redacted_url();
    assert_eq!(
        url,
        "postgres://u@h:5432/d?sslmode=verify-full&sslrootcert=%2Fca.pem\
         &sslcert=%2Fc%20d%2Fclient.crt&sslkey=%2Fk.key&passfile=%2Fp%2Fpgpass"
    );
    let back = PgConnectionConfig::from_url(&url).unwrap();
    assert_eq!(back.ssl_root_cert(), c.ssl_root_cert());
    assert_eq!(back.ssl_cert(), c.ssl_cert());
    assert_eq!(back.ssl_key(), c.ssl_key());
    assert_eq!(back.passfile(), c.passfile());
    let debug = format!("{c:?}");
    assert!(
        debug.contains("client.crt") && debug.contains("pgpass"),
        "{debug}"
    );

    let kv = PgConnectionConfig::from_key_value(
        "host=h sslcert='/a b.crt' sslkey=/a.key sslrootcert='' passfile=/x",
    )
    .unwrap();
    assert_eq!(kv.ssl_cert(), Some(Path::new("/a b.crt")));
    assert_eq!(kv.ssl_key(), Some(Path::new("/a.key")));
    assert_eq!(
        kv.ssl_root_cert(),
        None,
        "an empty value means unset, as in libpq"
    );
    assert_eq!(kv.passfile(), Some(Path::new("/x")));

    let e = PgConnectionConfig::from_env_with(
        Database::CodeIntel,
        env(&[
            ("CODEINTEL_PGSSLROOTCERT", "/ci/ca.pem"),
            ("CODEINTEL_PGSSLCERT", "/ci/client.crt"),
            ("CODEINTEL_PGSSLKEY", "/ci/client.key"),
            ("CODEINTEL_PGPASSFILE", "/ci/pgpass"),
            ("PGSSLCERT", "/frontend.crt"),
        ]),
    )
    .unwrap();
    assert_eq!(e.ssl_root_cert(), Some(Path::new("/ci/ca.pem")));
    assert_eq!(e.ssl_cert(), Some(Path::new("/ci/client.crt")));
    assert_eq!(e.ssl_key(), Some(Path::new("/ci/client.key")));
    assert_eq!(e.passfile(), Some(Path::new("/ci/pgpass")));
}

#[test]
fn system_roots_default_to_verify_full_and_refuse_weaker_modes() {
    let c = PgConnectionConfig::from_url("postgres://u@h/d?sslrootcert=system").unwrap();
    assert!(c.uses_system_roots());
    assert_eq!(c.ssl_mode(), SslMode::VerifyFull);
    assert_eq!(
        c.redacted_url(),
        "postgres://u@h:5432/d?sslmode=verify-full&sslrootcert=system"
    );
    let kv = PgConnectionConfig::from_key_value("host=h sslmode=verify-full sslrootcert=system").unwrap();
    assert_eq!(kv.ssl_mode(), SslMode::VerifyFull);
    // A file called "system" in the working directory is spelled ./system.
    let file = PgConnectionConfig::from_key_value("host=h sslrootcert=./system sslmode=require").unwrap();
    assert!(!file.uses_system_roots());
    for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
        let e = PgConnectionConfig::from_url(&format!("postgres://u@h/d?sslrootcert=system&sslmode={mode}"))
            .unwrap_err();
        assert!(e.to_string().contains("sslrootcert=system"), "{mode}: {e}");
    }
    let e = PgConnectionConfig::from_env_with(
        Database::Frontend,
        env(&[("PGSSLROOTCERT", "system"), ("PGSSLMODE", "require")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("weak sslmode"), "{e}");
    let env_ok =
        PgConnectionConfig::from_env_with(Database::Frontend, env(&[("PGSSLROOTCERT", "system")])).unwrap();
    assert_eq!(env_ok.ssl_mode(), SslMode::VerifyFull);
    // with_ssl_mode can still weaken it: connecting refuses, before any network traffic.
    let weak = env_ok.with_ssl_mode(SslMode::Require);
    let e = weak.check_system_roots_mode().unwrap_err();
    assert!(e.to_string().contains("weak sslmode \"require\""), "{e}");
}

/// A home directory with the libpq files that exist in it.
fn home_with(files: &[&str]) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    for f in files {
        std::fs::write(home.path().join(".postgresql").join(f), "x").unwrap();
    }
    home
}

#[test]
fn tls_defaults_from_the_home_directory_only_when_present() {
    use crate::tls::{ClientCert, Roots};
    let c = PgConnectionConfig::from_url("postgres://u@h/d?sslmode=verify-full").unwrap();
    let empty = home_with(&[]);
    let home_env = |home: &tempfile::TempDir| {
        let h = home.path().to_str().unwrap().to_owned();
        move |name: &str| (name == "HOME").then(|| h.clone())
    };
    assert_eq!(
        c.tls_files(home_env(&empty)).unwrap(),
        (Roots::Bundled, None),
        "nothing in ~/.postgresql: bundled roots, no client certificate"
    );
    assert_eq!(c.tls_files(|_| None).unwrap(), (Roots::Bundled, None), "no HOME");

    let full = home_with(&["root.crt", "postgresql.crt", "postgresql.key"]);
    let dir = full.path().join(".postgresql");
    assert_eq!(
        c.tls_files(home_env(&full)).unwrap(),
        (
            Roots::File(dir.join("root.crt")),
            Some(ClientCert {
                cert: dir.join("postgresql.crt"),
                key: dir.join("postgresql.key"),
            })
        )
    );
    // Explicit settings win over the defaults; the key default still applies to a given cert.
    let explicit = PgConnectionConfig::from_url(&format!(
        "postgres://u@h/d?sslrootcert=system&sslcert={}",
        dir.join("root.crt").display()
    ))
    .unwrap();
    assert_eq!(
        explicit.tls_files(home_env(&full)).unwrap(),
        (
            Roots::System,
            Some(ClientCert {
                cert: dir.join("root.crt"),
                key: dir.join("postgresql.key"),
            })
        )
    );
    // A certificate without a key file is still offered: loading the key names the problem.
    let cert_only = home_with(&["postgresql.crt"]);
    let (_, client) = c.tls_files(home_env(&cert_only)).unwrap();
    assert_eq!(
        client.map(|c| c.key),
        Some(cert_only.path().join(".postgresql/postgresql.key"))
    );
    // An sslcert that does not exist is an error, not silently skipped.
    let missing = PgConnectionConfig::from_url("postgres://u@h/d?sslcert=/no/such.crt").unwrap();
    let e = missing.tls_files(home_env(&empty)).unwrap_err();
    assert!(
        matches!(&e, PgError::ClientCertificate { path, .. } if path == Path::new("/no/such.crt")),
        "{e:?}"
    );
}

fn target<'a>(host: &str, port: u16, dbname: &'a str, user: &'a str) -> pgpass::Target<'a> {
    pgpass::Target {
        host: pgpass::host_key(host),
        port: port.to_string(),
        dbname,
        user,
    }
}

#[test]
fn pgpass_lines_fields_wildcards_and_escapes() {
    let file = br"# comment line: *:*:*:*:nope
db.example.com:5432:sg:sg:first
db.example.com:5432:sg:sg:second
db.example.com:*:*:sg:any-port-or-db
*:*:*:admin:p\:a\\ss:ignored-after-colon
other:6432:my\:db:weird\\user:escaped-fields
[::1]:5432:*:v6:bracketed
::1:5432:*:v6:unescaped-colons
empty:5432:*:*:
empty:5432:*:*:not-reached
\*:5432:*:lit:star-literal
trailing\";
    let t = |h, p, d, u| pgpass::lookup(file, &target(h, p, d, u));
    assert_eq!(t("db.example.com", 5432, "sg", "sg"), Some(b"first".to_vec()));
    assert_eq!(
        t("db.example.com", 6432, "other", "sg"),
        Some(b"any-port-or-db".to_vec())
    );
    assert_eq!(t("anything", 1, "x", "admin"), Some(br"p:a\ss".to_vec()));
    assert_eq!(
        t("other", 6432, "my:db", r"weird\user"),
        Some(b"escaped-fields".to_vec())
    );
    assert_eq!(t("other", 6432, "my:db", "weird"), None);
    // An unescaped ':' matches a ':' of the host (IPv6), as in libpq.
    assert_eq!(t("::1", 5432, "d", "v6"), Some(b"unescaped-colons".to_vec()));
    // The first matching line wins even with an empty password, which counts as none.
    assert_eq!(t("empty", 5432, "d", "u"), None);
    // `\*` is a literal star, not a wildcard.
    assert_eq!(t("*", 5432, "d", "lit"), Some(b"star-literal".to_vec()));
    assert_eq!(t("h", 5432, "d", "lit"), None);
    assert_eq!(t("db.example.com", 5432, "sg", "nobody"), None);
    // Case matters, prefixes do not match.
    assert_eq!(t("DB.example.com", 5432, "sg", "sg"), None);
    assert_eq!(t("db.example.com", 5432, "sg", "s"), None);
    // CRLF line ends.
    let crlf = b"h:1:d:u:pw\r\nh:2:d:u:pw2\r\n";
    assert_eq!(
        pgpass::lookup(crlf, &target("h", 1, "d", "u")),
        Some(b"pw".to_vec())
    );
    assert_eq!(
        pgpass::lookup(crlf, &target("h", 2, "d", "u")),
        Some(b"pw2".to_vec())
    );
}

#[test]
fn pgpass_socket_hosts() {
    assert_eq!(pgpass::host_key("/var/run/postgresql"), "localhost");
    assert_eq!(pgpass::host_key("/tmp/"), "localhost");
    assert_eq!(pgpass::host_key("/srv/pg"), "/srv/pg");
    assert_eq!(pgpass::host_key("127.0.0.1"), "127.0.0.1");
    let file = b"localhost:5432:*:*:via-socket\n/srv/pg:5433:*:*:custom-dir\n";
    let sock = PgConnectionConfig::from_url("postgres://u@%2Fvar%2Frun%2Fpostgresql/d").unwrap();
    let targets = sock.pgpass_targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(pgpass::lookup(file, &targets[0]), Some(b"via-socket".to_vec()));
    let custom = PgConnectionConfig::from_key_value("host=/srv/pg port=5433 user=u").unwrap();
    assert_eq!(
        pgpass::lookup(file, &custom.pgpass_targets()[0]),
        Some(b"custom-dir".to_vec())
    );
    // hostaddr alone is looked up by the address; several hosts each with its own port.
    let addr = PgConnectionConfig::from_key_value("hostaddr=10.0.0.5 port=6000 user=u").unwrap();
    assert_eq!(addr.pgpass_targets()[0].host, "10.0.0.5");
    let multi = PgConnectionConfig::from_url("postgres://u@a:1,b:2/d").unwrap();
    let hosts: Vec<(String, String)> = multi
        .pgpass_targets()
        .into_iter()
        .map(|t| (t.host, t.port))
        .collect();
    assert_eq!(hosts, vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
}

fn write_mode(path: &Path, content: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn pgpass_file_selection_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap().to_owned();
    let explicit = dir.path().join("explicit");
    let from_env = dir.path().join("from-env");
    // passfile > PGPASSFILE > ~/.pgpass
    let lookup = |pgpassfile: Option<&Path>| {
        let home = home.clone();
        let pgpassfile = pgpassfile.map(|p| p.to_str().unwrap().to_owned());
        move |name: &str| match name {
            "HOME" => Some(home.clone()),
            "PGPASSFILE" => pgpassfile.clone(),
            _ => None,
        }
    };
    assert_eq!(
        pgpass::file_path(Some(&explicit), lookup(Some(&from_env))),
        Some(explicit.clone())
    );
    assert_eq!(
        pgpass::file_path(None, lookup(Some(&from_env))),
        Some(from_env.clone())
    );
    assert_eq!(
        pgpass::file_path(None, lookup(None)),
        Some(dir.path().join(".pgpass"))
    );
    assert_eq!(pgpass::file_path(None, |_| None), None);

    let c = PgConnectionConfig::from_url("postgres://sg@db:5432/sg").unwrap();
    let targets = c.pgpass_targets();
    let line = format!("db:5432:sg:sg:{SECRET}\n");
    assert_eq!(pgpass::lookup_file(&explicit, &targets), pgpass::Outcome::Missing);
    write_mode(&explicit, line.as_bytes(), 0o600);
    assert_eq!(
        pgpass::lookup_file(&explicit, &targets),
        pgpass::Outcome::Found(SECRET.as_bytes().to_vec())
    );
    assert_eq!(
        c.password_from_file(lookup(None)),
        None,
        "the default ~/.pgpass does not exist"
    );
    let mut with_passfile = c.clone();
    with_passfile.files.passfile = Some(explicit.clone());
    assert_eq!(
        with_passfile.password_from_file(lookup(None)),
        Some(SECRET.as_bytes().to_vec())
    );
    for mode in [0o640, 0o604, 0o644, 0o610] {
        write_mode(&explicit, line.as_bytes(), mode);
        match pgpass::lookup_file(&explicit, &targets) {
            pgpass::Outcome::Ignored(warning) => {
                assert!(warning.contains("group or world access"), "{warning}");
                assert!(!warning.contains(SECRET));
            }
            other => panic!("mode {mode:o}: {other:?}"),
        }
        assert_eq!(with_passfile.password_from_file(lookup(None)), None);
    }
    write_mode(&explicit, line.as_bytes(), 0o400);
    assert!(matches!(
        pgpass::lookup_file(&explicit, &targets),
        pgpass::Outcome::Found(_)
    ));
    assert!(matches!(
        pgpass::lookup_file(dir.path(), &targets),
        pgpass::Outcome::Ignored(w) if w.contains("not a plain file")
    ));
    write_mode(&explicit, b"db:5432:sg:other:x\n", 0o600);
    assert_eq!(pgpass::lookup_file(&explicit, &targets), pgpass::Outcome::NoMatch);
}

/// Found by fuzzing (fuzz target `pg_connection`): any host holding ':' was put in brackets,
/// where the URL parser takes it verbatim, so a socket directory like `/run/pg:a` (its '/' ends
/// the host part) or a name with '@' or ']' gave a redacted URL that did not parse back.
#[test]
fn redacted_url_round_trips_hosts_with_colons() {
    for (input, hosts) in [
        ("host=/run/pg:a port=5433 user=u", vec!["/run/pg:a"]),
        ("host=a:b@c,x]:y dbname=d", vec!["a:b@c", "x]:y"]),
        ("postgres://u@%2Ftmp%2Fa%3Ab,[::1]:6/d", vec!["/tmp/a:b", "::1"]),
        ("postgres://u@[fe80::1%25eth0]/d", vec!["fe80::1%25eth0"]),
    ] {
        let c: PgConnectionConfig = input.parse().unwrap();
        assert_eq!(c.hosts(), hosts, "{input}");
        let url = c.redacted_url();
        let back = PgConnectionConfig::from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(back.hosts(), hosts, "{url}");
        assert_eq!(back.endpoint(), c.endpoint(), "{url}");
        assert_eq!(back.redacted_url(), url);
    }
    let v6 = PgConnectionConfig::from_url("postgres://u@[::1]:6/d").unwrap();
    assert_eq!(v6.redacted_url(), "postgres://u@[::1]:6/d?sslmode=prefer");
}

#[test]
fn percent_encoding_takes_two_hex_digits_only() {
    // `u8::from_str_radix` alone would read "+1" as 1; libpq refuses it.
    let err = PgConnectionConfig::from_url("postgres://u@h/d%+1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("percent-encoding"), "{err}");
    assert_eq!(
        PgConnectionConfig::from_url("postgres://u@h/d%41")
            .unwrap()
            .dbname(),
        "dA"
    );
}
