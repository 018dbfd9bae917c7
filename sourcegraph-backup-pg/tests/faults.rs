//! Faults and concurrency: a worker's backend terminated mid-COPY (once: redone; twice:
//! fails), a non-empty target, an extension missing on the target, DDL on the source during
//! a backup (waits for it) or before it (the backup's lock wait runs out, naming the
//! blocker), and writes while the backup runs.
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
use sourcegraph_backup_testkit::{oracle, PgClientTools, PgCluster};
use tokio::sync::mpsc::UnboundedReceiver;

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

/// Creates `db` with a small table and a 1.5 M-row `big_table` (a few seconds of COPY).
async fn big_database(cluster: &PgCluster, db: &str) {
    cluster.create_database(db).await.unwrap();
    cluster
        .batch_execute(
            db,
            "CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 10); \
             CREATE TABLE big_table (id bigint, payload text); \
             INSERT INTO big_table SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 1500000) g;",
        )
        .await
        .unwrap();
}

/// Waits for the first progress event of a table whose name contains `table`.
async fn first_rows_of(events: &mut UnboundedReceiver<ProgressEvent>, table: &str) {
    while let Some(e) = events.recv().await {
        if matches!(&e, ProgressEvent::Rows { table: t, .. } if t.contains(table)) {
            return;
        }
    }
    panic!("the export ended before {table} was copied");
}

/// Terminates the backend running `COPY ...big_table...` (a worker: the leader never runs
/// a COPY while workers are busy) other than `not`, polling until there is one; its pid.
async fn terminate_big_table_copy(src: &PgCluster, not: Option<i32>) -> i32 {
    let client = src.connect("postgres").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let row = client
            .query_opt(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE 'COPY %big_table%' AND state = 'active' \
                   AND pid <> pg_backend_pid() AND pid IS DISTINCT FROM $1 LIMIT 1",
                &[&not],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            assert!(row.get::<_, bool>(1), "pg_terminate_backend failed");
            return row.get(0);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no COPY of big_table to terminate"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every file of store `store` of backup `backup_id` in a local repository, as artifact
/// paths (`<store>/...`).
fn files_of_store(root: &std::path::Path, backup_id: &str, store: &str) -> Vec<String> {
    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let base = root.join(backup_id);
    let mut out = Vec::new();
    walk(&base.join(store), &base, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_connection_lost_mid_copy_is_redone_and_the_backup_is_identical() {
    let (src, dst) = two_clusters().await;
    big_database(&src, "big").await;
    dst.create_database("big").await.unwrap();
    let (dir, repo) = local_repo();
    let (progress, mut events) = ProgressSink::channel();
    let options = PgExportOptions { jobs: 2, ..generic() };
    let export = {
        let repo = repo.clone();
        let src = &src;
        async move { backup(&repo, "big", src, "big", options, progress).await }
    };
    let killer = async {
        // The big table's rows are flowing: kill the worker copying it.
        first_rows_of(&mut events, "big_table").await;
        terminate_big_table_copy(&src, None).await
    };
    let (result, _killed) = tokio::join!(export, killer);
    let manifest = result.expect("the backup should survive a lost worker connection");
    let section = manifest.store("big").unwrap();
    assert!(
        section.warnings.iter().any(
            |w| w.contains("big_table") && w.contains("was lost") && w.contains("redone")
                // Killed mid-COPY: the redo checked and skipped what was already written.
                && !w.contains("after 0 bytes")
        ),
        "no warning about the redone part: {:?}",
        section.warnings
    );
    let details = &section.details;
    let big = details["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "big_table")
        .unwrap();
    assert_eq!(big["rows"], 1_500_000, "rows counted twice or lost: {big}");
    // One artifact for the part, and nothing else on disk than what the manifest lists.
    let mut listed: Vec<String> = section.artifacts.iter().map(|a| a.path.clone()).collect();
    listed.sort();
    assert_eq!(files_of_store(dir.path(), &manifest.backup_id, "big"), listed);

    restore(&repo, "big", &dst, "big", import_options())
        .await
        .unwrap();
    assert_identical(&src, "big", &dst, "big").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_connection_lost_twice_fails_naming_the_part_and_commits_nothing() {
    let src = PgCluster::start().await.unwrap();
    big_database(&src, "big").await;
    let (_dir, repo) = local_repo();
    let (progress, mut events) = ProgressSink::channel();
    let options = PgExportOptions { jobs: 1, ..generic() };
    let export = {
        let repo = repo.clone();
        let src = &src;
        async move { backup(&repo, "big", src, "big", options, progress).await }
    };
    let killer = async {
        first_rows_of(&mut events, "big_table").await;
        let first = terminate_big_table_copy(&src, None).await;
        // The redo runs on a new backend: kill that one too.
        terminate_big_table_copy(&src, Some(first)).await;
    };
    let (result, ()) = tokio::join!(export, killer);
    let err = result.expect_err("a part is redone only once");
    let msg = err.to_string();
    assert!(matches!(err, PgError::RedoFailed { .. }), "{msg}");
    assert!(msg.contains("public.big_table"), "{msg}");
    assert!(msg.contains("terminating connection"), "{msg}");
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

/// Whether session `pid` is waiting for a lock.
async fn waits_for_a_lock(client: &tokio_postgres::Client, pid: i32) -> bool {
    client
        .query_one(
            "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_and_alter_table_during_a_backup_wait_for_it_and_the_backup_holds_every_table() {
    let (src, dst) = two_clusters().await;
    load(&src, "sg", &["frontend.sql"]).await;
    // A big table copied first (one worker, largest first) keeps the backup busy while the
    // DDL arrives.
    src.batch_execute(
        "sg",
        "CREATE TABLE big_filler (id bigint, payload text); \
         INSERT INTO big_filler SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 1000000) g;",
    )
    .await
    .unwrap();
    dst.create_database("sg").await.unwrap();
    // The oracle's view of the source before the DDL.
    let tools = PgClientTools::for_server_major(src.major().max(dst.major())).unwrap();
    let before = (
        oracle::schema_dump(&tools, &src, "sg").await.unwrap(),
        oracle::table_fingerprints(&src, "sg").await.unwrap(),
        oracle::sequence_states(&src, "sg").await.unwrap(),
    );

    let (_dir, repo) = local_repo();
    let (progress, mut events) = ProgressSink::channel();
    let options = PgExportOptions {
        jobs: 1,
        ..export_options()
    };
    let backup_done = Arc::new(AtomicBool::new(false));
    let export = {
        let (repo, src, backup_done) = (repo.clone(), &src, backup_done.clone());
        async move {
            let result = backup(&repo, "pgsql", src, "sg", options, progress).await;
            backup_done.store(true, Ordering::SeqCst);
            result
        }
    };
    let ddl = async {
        first_rows_of(&mut events, "big_filler").await;
        let mut sessions = Vec::new();
        for statement in [
            "DROP TABLE saved_searches",
            "ALTER TABLE users ADD COLUMN added_during_backup int",
        ] {
            let client = src.connect("sg").await.unwrap();
            let pid: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0);
            let task = tokio::spawn(async move { client.batch_execute(statement).await });
            sessions.push((statement, pid, task));
        }
        // Both statements queue behind the backup's locks, while the backup runs.
        let observer = src.connect("sg").await.unwrap();
        for (statement, pid, task) in &sessions {
            while !waits_for_a_lock(&observer, *pid).await {
                assert!(!task.is_finished(), "{statement} did not wait for the backup");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        assert!(
            !backup_done.load(Ordering::SeqCst),
            "the backup ended before the DDL queued; the test proves nothing"
        );
        sessions
    };
    let (result, sessions) = tokio::join!(export, ddl);
    let manifest = result.expect("the backup should complete while the DDL waits");
    // The DDL completes once the backup has ended.
    for (statement, _, task) in sessions {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap_or_else(|_| panic!("{statement} still waits after the backup"))
            .unwrap()
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let client = src.connect("sg").await.unwrap();
    let gone: bool = client
        .query_one("SELECT to_regclass('public.saved_searches') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(gone, "the DROP did not happen");
    let warnings = &manifest.store("pgsql").unwrap().warnings;
    for table in ["saved_searches", "users"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("public.{table} ")) && w.contains("leader")),
            "{table} was not copied by the leader: {warnings:?}"
        );
    }

    // The backup holds the pre-DDL database, every table with it.
    restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap();
    let after = (
        oracle::schema_dump(&tools, &dst, "sg").await.unwrap(),
        oracle::table_fingerprints(&dst, "sg").await.unwrap(),
        oracle::sequence_states(&dst, "sg").await.unwrap(),
    );
    assert!(before.1.contains_key("public.saved_searches"));
    assert_eq!(after.1, before.1, "table rows differ from the pre-DDL source");
    assert_eq!(after.2, before.2, "sequences differ from the pre-DDL source");
    let (schema_before, schema_after): (Vec<&str>, Vec<&str>) =
        (before.0.lines().collect(), after.0.lines().collect());
    assert_eq!(
        schema_after, schema_before,
        "schema differs from the pre-DDL source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_locked_past_the_lock_wait_fails_naming_the_table_and_the_blocking_statement() {
    let src = PgCluster::start().await.unwrap();
    load(&src, "sg", &["frontend.sql"]).await;
    // Another session holds an exclusive lock in an open transaction.
    let blocker = src.connect("sg").await.unwrap();
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    blocker.batch_execute("BEGIN").await.unwrap();
    blocker
        .batch_execute("LOCK TABLE saved_searches IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (dir, repo) = local_repo();
    let options = PgExportOptions {
        lock_timeout: Duration::from_millis(500),
        ..export_options()
    };
    let started = std::time::Instant::now();
    let err = backup(&repo, "pgsql", &src, "sg", options, ProgressSink::disabled())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    let msg = err.to_string();
    match &err {
        PgError::LockTimeout { table, waited, .. } => {
            assert_eq!(table, "public.saved_searches", "{msg}");
            assert_eq!(*waited, Duration::from_millis(500));
        }
        _ => panic!("not a lock timeout: {msg}"),
    }
    assert!(
        msg.contains("statement: LOCK TABLE saved_searches IN ACCESS EXCLUSIVE MODE"),
        "{msg}"
    );
    assert!(msg.contains(&format!("pid {blocker_pid}")), "{msg}");
    assert!(msg.contains("idle in transaction"), "{msg}");
    assert!(repo.list().await.unwrap().is_empty());
    // It failed before copying anything.
    let copies = data_files(dir.path());
    assert_eq!(copies, 0, "data was written before the lock wait ran out");
    blocker.batch_execute("ROLLBACK").await.unwrap();
}

/// COPY data files under `dir`, recursively.
fn data_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                data_files(&path)
            } else {
                usize::from(path.to_string_lossy().contains(".copy"))
            }
        })
        .sum()
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
