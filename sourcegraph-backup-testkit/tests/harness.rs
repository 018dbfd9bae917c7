//! The harness itself: clusters side by side, clean teardown, other majors, the oracle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use sourcegraph_backup_testkit::{oracle, ClusterOptions, PgBinaries, PgClientTools, PgCluster};

fn pid_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Zombies (state Z) are dead processes waiting to be reaped.
    !stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

async fn port_setting(cluster: &PgCluster) -> String {
    let client = cluster.connect("postgres").await.unwrap();
    let row = client
        .query_one("SELECT current_setting('port')", &[])
        .await
        .unwrap();
    row.get::<_, String>(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_side_by_side_and_clean_teardown() {
    let (a, b) = tokio::join!(PgCluster::start(), PgCluster::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.port(), b.port());
    assert_eq!(port_setting(&a).await, a.port().to_string());
    assert_eq!(port_setting(&b).await, b.port().to_string());
    assert_eq!(a.host(), "127.0.0.1");
    assert_eq!(a.superuser(), "postgres");
    assert_eq!(
        a.url("sg"),
        format!("postgres://postgres@127.0.0.1:{}/sg", a.port())
    );

    // fsync is off unless durable; the socket is where we said.
    let client = a.connect("postgres").await.unwrap();
    let fsync: String = client.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "off");
    assert!(a.socket_dir().join(format!(".s.PGSQL.{}", a.port())).exists());
    assert!(a.log_path().exists());
    drop(client);

    let pids = [a.postmaster_pid().unwrap(), b.postmaster_pid().unwrap()];
    let dirs: Vec<PathBuf> = [&a, &b]
        .iter()
        .map(|c| c.data_dir().parent().unwrap().to_path_buf())
        .collect();
    assert!(pids.iter().all(|p| pid_alive(*p)));
    assert!(dirs.iter().all(|d| d.exists()));

    drop(a);
    b.stop().unwrap();
    for pid in pids {
        assert!(!pid_alive(pid), "postmaster {pid} still running");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[tokio::test]
async fn durable_option_and_extra_settings() {
    let bins = PgBinaries::find().unwrap();
    let c = PgCluster::start_with(
        &bins,
        ClusterOptions::default()
            .durable(true)
            .setting("work_mem", "7MB")
            .setting("application_name", "it's quoted"),
    )
    .await
    .unwrap();
    let client = c.connect("postgres").await.unwrap();
    let get = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, String>(0) }
    };
    assert_eq!(get("SHOW fsync").await, "on");
    assert_eq!(get("SHOW work_mem").await, "7MB");
    assert_eq!(get("SHOW listen_addresses").await, "127.0.0.1");
    assert_eq!(get("SHOW server_encoding").await, "UTF8");
    assert_eq!(c.major(), bins.major());

    c.create_database("my db").await.unwrap();
    c.batch_execute("my db", "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    let other = c.connect("my db").await.unwrap();
    let n: i64 = other
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

/// Starts a cluster of `major`; fails (never skips) with install advice when it is missing.
async fn start_major(major: u32) -> PgCluster {
    let bins = PgBinaries::find_major(major).unwrap_or_else(|e| panic!("{e}"));
    let cluster = PgCluster::start_with(&bins, ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = cluster.connect("postgres").await.unwrap();
    let version: String = client.query_one("SHOW server_version", &[]).await.unwrap().get(0);
    assert!(
        version.starts_with(&format!("{major}.")),
        "{major} cluster reports {version}"
    );
    let collate: String = client
        .query_one(
            "SELECT datcollate::text FROM pg_database WHERE datname = 'postgres'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(collate, "C.UTF-8", "{major}");
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_12_and_16_clusters() {
    let (c12, c16) = tokio::join!(start_major(12), start_major(16));
    assert_eq!(c12.major(), 12);
    assert_eq!(c16.major(), 16);
    for c in [&c12, &c16] {
        c.batch_execute(
            "postgres",
            "CREATE EXTENSION citext; CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm",
        )
        .await
        .unwrap();
        c.create_database("sg").await.unwrap();
        c.batch_execute("sg", FIXTURE).await.unwrap();
    }
    // pg_dump 16 dumps both; without views deparsed differently the schemas match.
    c12.batch_execute("sg", "DROP VIEW v").await.unwrap();
    c16.batch_execute("sg", "DROP VIEW v").await.unwrap();
    oracle::compare(&c12, "sg", &c16, "sg")
        .await
        .unwrap()
        .assert_identical();
}

const FIXTURE: &str = r#"
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" (id serial PRIMARY KEY, "quoted ""col""" text, tags text[]);
INSERT INTO "Odd Schema"."Mixed Case" ("quoted ""col""", tags)
    SELECT 'row ' || g, ARRAY['a', NULL] FROM generate_series(1, 50) g;
CREATE TABLE events (id bigint, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO events SELECT g, DATE '2024-01-01' + g, jsonb_build_object('n', g) FROM generate_series(1, 100) g;
CREATE SEQUENCE untouched_seq;
CREATE VIEW v AS SELECT id FROM events WHERE id > 10;
"#;

#[tokio::test]
async fn oracle_accepts_copies_and_detects_changes() {
    let c = PgCluster::start().await.unwrap();
    c.create_database("a").await.unwrap();
    c.batch_execute("a", FIXTURE).await.unwrap();
    for copy in ["b", "c"] {
        // A copy through the template is byte-identical: the oracle must accept it.
        c.batch_execute("postgres", &format!("CREATE DATABASE {copy} TEMPLATE a"))
            .await
            .unwrap();
    }

    let same = oracle::compare(&c, "a", &c, "b").await.unwrap();
    same.assert_identical();
    assert_eq!(same.tables_compared, 3);
    assert_eq!(same.sequences_compared, 2);

    let fingerprints = oracle::table_fingerprints(&c, "a").await.unwrap();
    assert_eq!(fingerprints["\"Odd Schema\".\"Mixed Case\""].0, 50);
    assert_eq!(fingerprints["public.events"].0, 100);
    assert_eq!(fingerprints["public.events_2024"].0, 100);

    // One changed row: same count, different hash.
    c.batch_execute(
        "b",
        r#"UPDATE "Odd Schema"."Mixed Case" SET tags = '{b}' WHERE id = 7"#,
    )
    .await
    .unwrap();
    let changed = oracle::compare(&c, "a", &c, "b").await.unwrap();
    assert!(!changed.is_identical());
    assert!(changed.schema_diff.is_empty(), "{changed}");
    assert_eq!(changed.table_differences.len(), 1, "{changed}");
    assert!(changed.table_differences[0].starts_with("\"Odd Schema\".\"Mixed Case\": source 50 rows"));
    let panic = std::panic::catch_unwind(|| changed.assert_identical()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("Mixed Case"), "{message}");

    // Schema and sequence differences.
    c.batch_execute(
        "c",
        "ALTER TABLE events ADD COLUMN extra int; SELECT nextval('untouched_seq')",
    )
    .await
    .unwrap();
    let changed = oracle::compare(&c, "a", &c, "c").await.unwrap();
    assert!(
        changed
            .schema_diff
            .iter()
            .any(|l| l.starts_with('+') && l.contains("extra")),
        "{changed}"
    );
    assert_eq!(
        changed.sequence_differences,
        vec!["public.untouched_seq: source last_value 1, is_called false / target last_value 1, is_called true"]
    );
}

#[tokio::test]
async fn oracle_compares_two_clusters() {
    let (a, b) = tokio::join!(PgCluster::start(), PgCluster::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    for c in [&a, &b] {
        c.create_database("sg").await.unwrap();
        c.batch_execute("sg", FIXTURE).await.unwrap();
    }
    oracle::compare(&a, "sg", &b, "sg")
        .await
        .unwrap()
        .assert_identical();
    b.batch_execute("sg", "DELETE FROM events WHERE id = 3")
        .await
        .unwrap();
    let report = oracle::compare(&a, "sg", &b, "sg").await.unwrap();
    assert_eq!(report.table_differences.len(), 2, "{report}");
}

#[tokio::test]
async fn client_tools_cover_the_server_major() {
    let server = PgBinaries::find().unwrap();
    let tools = PgClientTools::for_server_major(server.major()).unwrap();
    assert!(tools.major() >= server.major());
    let out = tools.command("psql").arg("--version").output().unwrap();
    assert!(out.status.success());
    // PostgreSQL 16 clients (for 16 servers) are installed by scripts/install-test-deps.sh.
    let tools16 = PgClientTools::for_server_major(16).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tools16.major(), 16);
    for tool in ["pg_dump", "pg_restore", "psql"] {
        let out = tools16.command(tool).arg("--version").output().unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(PgClientTools::for_server_major(99).is_err());
}

#[test]
fn missing_server_fails_with_install_advice() {
    let err = PgBinaries::find_major(9).unwrap_err().to_string();
    assert!(err.contains("PostgreSQL 9 server binaries"), "{err}");
    assert!(err.contains("bash scripts/install-test-deps.sh"), "{err}");
    assert!(
        err.contains("apt-get install postgresql-15 postgresql-contrib"),
        "{err}"
    );
}
