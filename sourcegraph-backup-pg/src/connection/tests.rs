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
        DatabaseRole::Frontend,
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
        ("host=h sslcert=/c.pem", "sslcert is not supported"),
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
        DatabaseRole::Frontend,
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
    let c = PgConnectionConfig::from_env_with(DatabaseRole::Frontend, env(&[("USER", "alice")])).unwrap();
    assert_eq!(c.host(), "127.0.0.1");
    assert_eq!(c.port(), 5432);
    assert_eq!(c.user(), "alice");
    assert_eq!(c.dbname(), "alice");
    let c = PgConnectionConfig::from_env_with(
        DatabaseRole::CodeIntel,
        env(&[("CODEINTEL_PGHOST", ""), ("USER", "")]),
    )
    .unwrap();
    assert_eq!(c.host(), "127.0.0.1", "empty counts as unset");
    assert_eq!(c.user(), "postgres");
}

#[test]
fn env_datasource_wins() {
    let c = PgConnectionConfig::from_env_with(
        DatabaseRole::CodeInsights,
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
        DatabaseRole::Frontend,
        env(&[("PGDATASOURCE", "host=/tmp user=sg dbname=sg"), ("PGHOST", "x")]),
    )
    .unwrap();
    assert_eq!(c.host(), "/tmp");
    let e = PgConnectionConfig::from_env_with(
        DatabaseRole::CodeIntel,
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
    let f = PgConnectionConfig::from_env_with(DatabaseRole::Frontend, &vars).unwrap();
    let ci = PgConnectionConfig::from_env_with(DatabaseRole::CodeIntel, &vars).unwrap();
    let cs = PgConnectionConfig::from_env_with(DatabaseRole::CodeInsights, &vars).unwrap();
    assert_eq!((f.host().as_str(), f.user()), ("pgsql", "sg"));
    assert_eq!(
        (ci.host().as_str(), ci.user(), ci.dbname()),
        ("codeintel-db", "ci", "cidb")
    );
    assert_eq!(cs.host(), "codeinsights-db");
    assert_eq!(cs.port(), 6543);
    assert_eq!(cs.ssl_mode(), SslMode::VerifyFull);
    let e = PgConnectionConfig::from_env_with(
        DatabaseRole::CodeInsights,
        env(&[("CODEINSIGHTS_PGSSLMODE", "sometimes")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("CODEINSIGHTS_PGSSLMODE"), "{e}");
}

#[test]
fn roles_and_ssl_modes() {
    assert_eq!(DatabaseRole::Frontend.store_id(), "pgsql");
    assert_eq!(DatabaseRole::CodeIntel.store_id(), "codeintel-db");
    assert_eq!(DatabaseRole::CodeInsights.store_id(), "codeinsights-db");
    assert_eq!(DatabaseRole::CodeInsights.default_database(), "postgres");
    assert_eq!(DatabaseRole::CodeIntel.default_user(), "sg");
    for r in DatabaseRole::ALL {
        assert_eq!(DatabaseRole::from_store_id(r.store_id()), Some(r));
    }
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
