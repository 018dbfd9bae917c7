//! Restores across PostgreSQL majors, with servers from the harness (12 and 16 under `.tools/`,
//! 15 from the system): 12 → 15 and 12 → 16, 16 → 16, and a schema with 15+ features into
//! 12, which must be refused before anything is written. Missing servers or clients fail the
//! tests with install advice, never skip them.
//!
//! Across majors `pg_dump --schema-only` of source and target cannot be identical text: each
//! server prints view and routine bodies with its own deparser. So the restore under test is
//! compared with a reference restored into the same target server by `pg_dump -Fc` +
//! `pg_restore` of the newer major (`oracle::restore_reference`): schema text, rows and
//! sequences must equal the reference's; rows and sequences must also equal the source's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_identical, backup_quiet, export_options, import_options, load, local_repo, restore};
use sourcegraph_backup_core::BackupRepository;
use sourcegraph_backup_pg::{PgError, PgExportOptions};
use sourcegraph_backup_testkit::{oracle, ClusterOptions, PgBinaries, PgClientTools, PgCluster};

/// A throwaway cluster of server major `major`; panics with install advice when the server
/// is not installed.
async fn cluster(major: u32) -> PgCluster {
    let binaries = PgBinaries::find_major(major).unwrap_or_else(|e| {
        panic!("PostgreSQL {major} server is needed for this test: {e}");
    });
    PgCluster::start_with(&binaries, ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("starting a PostgreSQL {major} cluster: {e}"))
}

/// A tiny split threshold, so servers with TID range scans (14+) copy tables in ctid ranges.
fn split_export_options() -> PgExportOptions {
    PgExportOptions {
        split_threshold_bytes: 16 * 1024,
        ..export_options()
    }
}

/// Restores the newest backup in `repo` into a new database `sg` of `dst`, builds the reference
/// `reference` on `dst` from `sg` of `src` with pg_dump/pg_restore, and returns every
/// difference found, each line prefixed with `label` (empty when the restore is right).
async fn restore_and_compare(
    label: &str,
    repo: &BackupRepository,
    src: &PgCluster,
    dst: &PgCluster,
) -> Vec<String> {
    dst.create_database("sg").await.unwrap();
    if let Err(e) = restore(repo, "pgsql", dst, "sg", import_options()).await {
        return vec![format!("{label}: restore failed: {e}")];
    }
    oracle::restore_reference(src, "sg", dst, "reference")
        .await
        .unwrap_or_else(|e| panic!("{label}: the pg_dump/pg_restore reference failed: {e}"));

    let mut out = Vec::new();
    let reference = oracle::compare(dst, "reference", dst, "sg").await.unwrap();
    if !reference.is_identical() {
        out.push("differs from pg_dump/pg_restore on the same server (- reference, + ours):".into());
        out.extend(reference.differences());
    }
    assert!(
        reference.tables_compared >= 35 && reference.sequences_compared >= 10,
        "{label}: the fixtures were not all loaded: {reference:?}"
    );
    // Rows and sequences also against the source itself, independently of pg_dump.
    let direct = oracle::compare(src, "sg", dst, "sg").await.unwrap();
    if !(direct.table_differences.is_empty() && direct.sequence_differences.is_empty()) {
        out.push("rows or sequences differ from the source:".into());
        out.extend(direct.table_differences.iter().map(|d| format!("table {d}")));
        out.extend(
            direct
                .sequence_differences
                .iter()
                .map(|d| format!("sequence {d}")),
        );
    }
    out.into_iter().map(|l| format!("[{label}] {l}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg12_source_restores_into_pg15_and_pg16_like_pg_restore() {
    let (src, to15, to16) = tokio::join!(cluster(12), cluster(15), cluster(16));
    load(&src, "sg", &["frontend.sql", "adversarial.sql"]).await;
    let (_dir, repo) = local_repo();
    backup_quiet(&repo, "pgsql", &src, "sg", split_export_options()).await;

    // Both targets, then one verdict, so a failure shows every difference of both.
    let (d15, d16) = tokio::join!(
        restore_and_compare("12 -> 15", &repo, &src, &to15),
        restore_and_compare("12 -> 16", &repo, &src, &to16),
    );
    let differences: Vec<String> = d15.into_iter().chain(d16).collect();
    assert!(
        differences.is_empty(),
        "cross-version restores differ:\n{}",
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg16_source_restores_into_pg16() {
    let (src, dst) = tokio::join!(cluster(16), cluster(16));
    load(
        &src,
        "sg",
        &["frontend.sql", "frontend-pg15.sql", "adversarial.sql"],
    )
    .await;
    dst.create_database("sg").await.unwrap();
    let (_dir, repo) = local_repo();
    let manifest = backup_quiet(&repo, "pgsql", &src, "sg", split_export_options()).await;
    assert!(manifest.store("pgsql").is_some());
    restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap();
    let report = assert_identical(&src, "sg", &dst, "sg").await;
    assert!(
        report.tables_compared >= 35 && report.sequences_compared >= 10,
        "{report:?}"
    );
}

/// Everything a restore could have created in `db`: relations, types, routines, schemas,
/// extensions, outside the system schemas (plpgsql and `public` come with every database).
async fn user_objects(cluster: &PgCluster, db: &str) -> Vec<String> {
    let client = cluster.connect(db).await.unwrap();
    let user_ns = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                   AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";
    let sql = format!(
        "SELECT 'relation ' || c.oid::regclass::text FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_ns} \
         UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type t \
           JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {user_ns} \
         UNION ALL SELECT 'routine ' || p.oid::regprocedure::text FROM pg_proc p \
           JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {user_ns} \
         UNION ALL SELECT 'schema ' || n.nspname::text FROM pg_namespace n \
           WHERE {user_ns} AND n.nspname <> 'public' \
         UNION ALL SELECT 'extension ' || extname::text FROM pg_extension WHERE extname <> 'plpgsql' \
         ORDER BY 1"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg16_schema_with_15_features_into_pg12_is_refused_before_writing() {
    let (src, dst) = tokio::join!(cluster(16), cluster(12));
    load(&src, "sg", &["frontend.sql", "frontend-pg15.sql"]).await;
    dst.create_database("sg").await.unwrap();
    dst.create_database("pristine").await.unwrap();
    let (_dir, repo) = local_repo();
    backup_quiet(&repo, "pgsql", &src, "sg", export_options()).await;

    let err = restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap_err();
    let PgError::IncompatibleTarget { database, problems } = &err else {
        panic!("expected IncompatibleTarget, got: {err}");
    };
    assert_eq!(database, "sg");
    let message = err.to_string();
    // Every 15+ (and 14+) object of frontend-pg15.sql is named, with what it needs.
    for object in [
        "public.site_config_invoker",
        "public.users_invoker",
        "sequence public.search_context_cache_version_seq",
        "saved_searches_description_nulls_not_distinct",
        "public.event_logs",
    ] {
        assert!(message.contains(object), "{object} is not named in: {message}");
    }
    assert!(problems.contains("150000"), "{problems}");
    assert!(
        !message.contains("public.users "),
        "a 12-compatible object was flagged: {message}"
    );

    // Nothing was written (the same query does see the source's objects): no relation, type, routine, schema or extension, and the schema
    // dump is the one of a database nobody touched.
    assert!(user_objects(&src, "sg").await.len() > 100);
    assert_eq!(user_objects(&dst, "sg").await, Vec::<String>::new());
    let tools = PgClientTools::for_server_major(12).unwrap();
    let (target, pristine) = tokio::join!(
        oracle::schema_dump(&tools, &dst, "sg"),
        oracle::schema_dump(&tools, &dst, "pristine")
    );
    assert_eq!(target.unwrap(), pristine.unwrap());
}
