//! Connecting to a real cluster from a URL, key=value, a Unix socket and environment variables;
//! errors name the endpoint and never the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use sourcegraph_backup_pg::{Database, PgConnectionConfig, PgError, SslMode};
use sourcegraph_backup_testkit::PgCluster;

/// Who we are connected as, through what, and whether TLS is on.
async fn session(config: &PgConnectionConfig) -> (String, String, Option<String>, bool) {
    let client = config.connect().await.unwrap();
    let row = client
        .query_one(
            "SELECT current_database()::text, current_setting('application_name'), \
                    host(inet_server_addr()), \
                    coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn url_key_value_socket_and_env() {
    let cluster = PgCluster::start().await.unwrap();
    cluster.create_database("sg db").await.unwrap();

    let url = PgConnectionConfig::from_url(&cluster.url("sg db")).unwrap();
    let (db, app, addr, ssl) = session(&url).await;
    assert_eq!(db, "sg db");
    assert_eq!(app, "sourcegraph-backup");
    assert_eq!(addr.as_deref(), Some("127.0.0.1"));
    // The test server has no TLS: the default sslmode (prefer) falls back to plain text.
    assert_eq!(url.ssl_mode(), SslMode::Prefer);
    assert!(!ssl);

    let kv = PgConnectionConfig::from_key_value(&cluster.key_value("sg db")).unwrap();
    assert_eq!(session(&kv).await.0, "sg db");

    // Unix socket: libpq-style host directory, in key=value and URL form. sslmode=require is
    // ignored on sockets, as libpq does.
    let socket = cluster.socket_dir().to_str().unwrap().to_owned();
    let kv_socket = PgConnectionConfig::from_key_value(&format!(
        "host='{socket}' port={} user=postgres dbname='sg db' sslmode=require",
        cluster.port()
    ))
    .unwrap();
    assert!(kv_socket.is_unix_socket());
    let (db, _, addr, ssl) = session(&kv_socket).await;
    assert_eq!(db, "sg db");
    assert_eq!(addr, None, "a Unix-socket session has no server address");
    assert!(!ssl);
    let url_socket: PgConnectionConfig = kv_socket.redacted_url().parse().unwrap();
    assert_eq!(session(&url_socket).await.0, "sg db");

    // Environment, codeintel family; with_dbname switches the database on the same server.
    let vars: HashMap<&str, String> = [
        ("CODEINTEL_PGHOST", "127.0.0.1".to_owned()),
        ("CODEINTEL_PGPORT", cluster.port().to_string()),
        ("CODEINTEL_PGUSER", "postgres".to_owned()),
        ("CODEINTEL_PGDATABASE", "postgres".to_owned()),
        ("CODEINTEL_PGSSLMODE", "disable".to_owned()),
    ]
    .into_iter()
    .collect();
    let from_env = PgConnectionConfig::from_env_with(Database::CodeIntel, |k| vars.get(k).cloned()).unwrap();
    assert_eq!(session(&from_env).await.0, "postgres");
    assert_eq!(session(&from_env.with_dbname("sg db")).await.0, "sg db");
}

#[tokio::test]
async fn connect_errors_name_the_endpoint_not_the_password() {
    let cluster = PgCluster::start().await.unwrap();
    let secret = "hunter2-XYZ";
    let missing_db = PgConnectionConfig::from_url(&format!(
        "postgres://postgres:{secret}@127.0.0.1:{}/nosuchdb?sslmode=disable",
        cluster.port()
    ))
    .unwrap();
    let err = missing_db.connect().await.unwrap_err();
    assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(
        text.contains(&format!("127.0.0.1:{}/nosuchdb", cluster.port())),
        "{text}"
    );
    assert!(text.contains("nosuchdb\" does not exist"), "{text}");
    assert!(!text.contains(secret), "{text}");

    // Nothing listens on the port once the cluster is gone.
    let port = cluster.port();
    cluster.stop().unwrap();
    let refused =
        PgConnectionConfig::from_url(&format!("postgres://sg:{secret}@127.0.0.1:{port}/sg")).unwrap();
    let err = refused.connect().await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains(&format!("127.0.0.1:{port}/sg")), "{text}");
    assert!(!text.contains(secret), "{text}");
}
