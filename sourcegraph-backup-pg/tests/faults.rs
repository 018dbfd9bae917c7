//! Faults and concurrency: a backend terminated mid-COPY, a non-empty target, an extension
//! missing on the target, a table dropped concurrently, and writes while the backup runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    assert_identical, backup, backup_quiet, export_options, import_options, load, local_repo, restore,
    two_clusters,
};
use sourcegraph_backup_core::{ProgressEvent, ProgressSink};
use sourcegraph_backup_pg::{PgError, PgExportOptions, PgImportOptions};
use sourcegraph_backup_testkit::PgCluster;

fn generic() -> PgExportOptions {
    PgExportOptions {
        allow_generic: true,
        ..export_options()
    }
}

/// Relations and functions in `public`, to show a refused restore changed nothing.
async fn public_objects(cluster: &PgCluster, db: &str) -> Vec<String> {
    let client = cluster.connect(db).await.unwrap();
    client
        .query(
            "SELECT 'rel ' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace \
             UNION ALL SELECT 'fn ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace \
             UNION ALL SELECT 'ext ' || extname FROM pg_extension ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backend_terminated_mid_copy_fails_naming_the_table_and_commits_nothing() {
    let src = PgCluster::start().await.unwrap();
    src.create_database("big").await.unwrap();
    src.batch_execute(
        "big",
        "CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 10); \
         CREATE TABLE big_table (id bigint, payload text); \
         INSERT INTO big_table SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 1500000) g;",
    )
    .await
    .unwrap();
    let (_dir, repo) = local_repo();
    let (progress, mut events) = ProgressSink::channel();
    let options = PgExportOptions { jobs: 1, ..generic() };
    let export = {
        let repo = repo.clone();
        let src = &src;
        async move { backup(&repo, "pgsql", src, "big", options, progress).await }
    };
    let killer = async {
        // Wait until the big table's rows are flowing, then kill the backend copying it.
        while let Some(e) = events.recv().await {
            if matches!(&e, ProgressEvent::Rows { table, .. } if table.contains("big_table")) {
                break;
            }
        }
        let client = src.connect("postgres").await.unwrap();
        let killed: i64 = client
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE 'COPY %big_table%' AND pid <> pg_backend_pid()) t",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        killed
    };
    let (result, killed) = tokio::join!(export, killer);
    assert_eq!(killed, 1, "the COPY finished before it could be terminated");
    let err = result.expect_err("the export should fail");
    let msg = err.to_string();
    assert!(matches!(err, PgError::Copy { .. }), "{msg}");
    assert!(
        msg.contains("\"public\".\"big_table\"") || msg.contains("public.big_table"),
        "{msg}"
    );
    assert!(repo.list().await.unwrap().is_empty(), "a manifest was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_empty_target_is_refused_unchanged_and_clean_first_checks_the_version() {
    let (src, dst) = two_clusters().await;
    load(&src, "sg", &["frontend.sql"]).await;
    let (_dir, repo) = local_repo();
    backup_quiet(&repo, "pgsql", &src, "sg", export_options()).await;

    dst.create_database("sg").await.unwrap();
    dst.batch_execute(
        "sg",
        "CREATE TABLE versions (service text PRIMARY KEY, version text NOT NULL, first_version text NOT NULL); \
         INSERT INTO versions VALUES ('frontend', '5.8.0', '5.0.0');",
    )
    .await
    .unwrap();
    let before = public_objects(&dst, "sg").await;
    let err = restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::TargetNotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("versions"), "{err}");
    assert_eq!(public_objects(&dst, "sg").await, before);

    let clean = PgImportOptions {
        clean_first: true,
        ..import_options()
    };
    let err = restore(&repo, "pgsql", &dst, "sg", clean.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::VersionMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("5.8.0") && err.to_string().contains("5.9.0"),
        "{err}"
    );
    assert_eq!(public_objects(&dst, "sg").await, before);

    let forced = PgImportOptions { force: true, ..clean };
    restore(&repo, "pgsql", &dst, "sg", forced).await.unwrap();
    assert_identical(&src, "sg", &dst, "sg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extension_missing_on_the_target_is_refused_before_any_write() {
    let (src, dst) = two_clusters().await;
    // A real extension that exists while the backup is taken and is gone for the restore:
    // its control file is installed into the server's share directory, then removed.
    let client = src.connect("postgres").await.unwrap();
    let share: String = client
        .query_one("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'", &[])
        .await
        .unwrap()
        .get(0);
    let name = format!("sgb_test_ext_{}", std::process::id());
    let ext_dir = std::path::Path::new(&share).join("extension");
    let control = ext_dir.join(format!("{name}.control"));
    let script = ext_dir.join(format!("{name}--1.0.sql"));
    std::fs::write(&control, "default_version = '1.0'\nrelocatable = true\n")
        .unwrap_or_else(|e| panic!("cannot install a test extension into {}: {e}", ext_dir.display()));
    std::fs::write(
        &script,
        "CREATE FUNCTION sgb_ext_answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n",
    )
    .unwrap();
    src.create_database("sg").await.unwrap();
    src.batch_execute(
        "sg",
        &format!(
            "CREATE EXTENSION {name} WITH SCHEMA public; \
             CREATE TABLE t (id int PRIMARY KEY DEFAULT sgb_ext_answer()); INSERT INTO t DEFAULT VALUES;"
        ),
    )
    .await
    .unwrap();
    let (_dir, repo) = local_repo();
    let result = backup(&repo, "pgsql", &src, "sg", generic(), ProgressSink::disabled()).await;
    std::fs::remove_file(&control).unwrap();
    std::fs::remove_file(&script).unwrap();
    result.unwrap();

    dst.create_database("sg").await.unwrap();
    let before = public_objects(&dst, "sg").await;
    let err = restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::IncompatibleTarget { .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(
        public_objects(&dst, "sg").await,
        before,
        "the refused restore wrote something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_dropped_concurrently_fails_the_backup_clearly() {
    let src = PgCluster::start().await.unwrap();
    load(&src, "sg", &["frontend.sql"]).await;
    // Another session is dropping a table and has not committed.
    let dropper = src.connect("sg").await.unwrap();
    dropper
        .batch_execute("BEGIN; DROP TABLE saved_searches")
        .await
        .unwrap();
    let (_dir, repo) = local_repo();
    let options = PgExportOptions {
        lock_timeout: Duration::from_millis(500),
        ..export_options()
    };
    let started = std::time::Instant::now();
    let err = backup(&repo, "pgsql", &src, "sg", options, ProgressSink::disabled())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(matches!(err, PgError::Lock { .. }), "{err}");
    assert!(err.to_string().contains("saved_searches"), "{err}");
    assert!(repo.list().await.unwrap().is_empty());
    dropper.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_during_the_backup_restore_to_one_consistent_instant() {
    let (src, dst) = two_clusters().await;
    src.create_database("bank").await.unwrap();
    src.batch_execute(
        "bank",
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, pad text); \
         INSERT INTO accounts SELECT g, 1000, repeat('x', 200) FROM generate_series(1, 20000) g; \
         CREATE TABLE transfers (id bigserial PRIMARY KEY, \
             from_id int NOT NULL REFERENCES accounts, to_id int NOT NULL REFERENCES accounts, \
             amount bigint NOT NULL); \
         CREATE TABLE filler (id int, payload text); \
         INSERT INTO filler SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 300000) g;",
    )
    .await
    .unwrap();
    dst.create_database("bank").await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writer = {
        let (client, stop, done) = (src.connect("bank").await.unwrap(), stop.clone(), done.clone());
        tokio::spawn(async move {
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let from = 1 + (i * 7919) % 20000;
                let to = 1 + (i * 104_729) % 20000;
                let amount = 1 + i % 50;
                client
                    .batch_execute(&format!(
                        "BEGIN; \
                         UPDATE accounts SET balance = balance - {amount} WHERE id = {from}; \
                         UPDATE accounts SET balance = balance + {amount} WHERE id = {to}; \
                         INSERT INTO transfers (from_id, to_id, amount) VALUES ({from}, {to}, {amount}); \
                         COMMIT"
                    ))
                    .await
                    .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while done.load(Ordering::Relaxed) < 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_dir, repo) = local_repo();
    let options = PgExportOptions {
        split_threshold_bytes: 256 * 1024,
        ..generic()
    };
    let before = done.load(Ordering::Relaxed);
    let manifest = backup_quiet(&repo, "bank", &src, "bank", options).await;
    let during = done.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(during > 0, "no write overlapped the backup");
    let details = &manifest.store("bank").unwrap().details;
    let split = details["tables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["artifacts"].as_array().unwrap().len() > 1);
    assert!(split, "no table was split");

    restore(&repo, "bank", &dst, "bank", import_options())
        .await
        .unwrap();
    let client = dst.connect("bank").await.unwrap();
    let row = client
        .query_one(
            "SELECT (SELECT sum(balance) FROM accounts)::bigint, \
                    (SELECT count(*) FROM transfers t WHERE NOT EXISTS \
                        (SELECT 1 FROM accounts a WHERE a.id = t.from_id) \
                     OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.to_id)), \
                    (SELECT count(*) FROM accounts a WHERE a.balance <> 1000 \
                        - coalesce((SELECT sum(amount) FROM transfers WHERE from_id = a.id), 0) \
                        + coalesce((SELECT sum(amount) FROM transfers WHERE to_id = a.id), 0)), \
                    (SELECT count(*) FROM transfers)",
            &[],
        )
        .await
        .unwrap();
    let (sum, orphans, mismatched, transfers): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(sum, 20_000 * 1000, "the invariant sum does not hold");
    assert_eq!(orphans, 0);
    assert_eq!(
        mismatched, 0,
        "balances and transfers come from different instants"
    );
    assert!(transfers >= 50);
}
