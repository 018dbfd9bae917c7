//! Shared helpers of the data-path tests: fixtures, backup into a local repository, restore.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;

use sourcegraph_backup_core::{
    BackupManifest, BackupOption, BackupRepository, DataStore, ExportContext, Exporter, ImportContext,
    ImportReport, Importer, ProgressSink, StoreError, StoreSection,
};
use sourcegraph_backup_pg::{PgConnectionConfig, PgError, PgExportOptions, PgImportOptions, PgStore};
use sourcegraph_backup_testkit::oracle::{self, OracleReport};
use sourcegraph_backup_testkit::PgCluster;
use tempfile::TempDir;

/// The Postgres store's own error inside a store error.
pub fn pg_error(e: StoreError) -> PgError {
    match e.into_cause().downcast::<PgError>() {
        Ok(pg) => *pg,
        Err(other) => panic!("the Postgres store failed with something else than a PgError: {other}"),
    }
}

/// Two throwaway clusters, source and destination, started concurrently.
pub async fn two_clusters() -> (PgCluster, PgCluster) {
    let (src, dst) = tokio::join!(PgCluster::start(), PgCluster::start());
    (src.unwrap(), dst.unwrap())
}

/// A backup repository in a fresh temporary directory (kept while the `TempDir` lives).
pub fn local_repo() -> (TempDir, BackupRepository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    (dir, repo)
}

/// Compares `src_db` of `src` with `dst_db` of `dst` with the oracle, asserts they are
/// identical and returns the report for further checks.
pub async fn assert_identical(src: &PgCluster, src_db: &str, dst: &PgCluster, dst_db: &str) -> OracleReport {
    let report = oracle::compare(src, src_db, dst, dst_db).await.unwrap();
    report.assert_identical();
    report
}

/// Path of a testkit fixture.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sourcegraph-backup-testkit/fixtures")
        .join(name)
}

/// A store for database `db` of `cluster`.
pub fn store(id: &str, cluster: &PgCluster, db: &str) -> PgStore {
    PgStore::new(id, PgConnectionConfig::from_url(&cluster.url(db)).unwrap())
}

/// Creates `db` on `cluster` and loads the fixtures into it.
pub async fn load(cluster: &PgCluster, db: &str, fixtures: &[&str]) {
    cluster.create_database(db).await.unwrap();
    for f in fixtures {
        cluster.execute_sql_file(db, &fixture(f)).await.unwrap();
    }
}

/// Backs up `db` of `cluster` as store `id` into `repo`, committing the manifest when the
/// export succeeds. Returns the export result and the manifest (None when nothing was
/// committed).
pub async fn backup(
    repo: &BackupRepository,
    id: &str,
    cluster: &PgCluster,
    db: &str,
    options: PgExportOptions,
    progress: ProgressSink,
) -> Result<BackupManifest, PgError> {
    let store = store(id, cluster, db).with_export_options(options);
    let writer = repo.start_backup(BackupOption::AllPostgres);
    let ctx = ExportContext::new(id, writer.clone(), progress);
    let report = store.export(ctx).await.map_err(pg_error)?;
    let section = StoreSection {
        id: id.into(),
        kind: store.kind(),
        catalog: vec![],
        details: report.details,
        warnings: report.warnings,
    };
    Ok(writer
        .commit(vec![section], None, report.source, vec![])
        .await
        .unwrap())
}

/// `backup` without progress events, which must succeed.
pub async fn backup_quiet(
    repo: &BackupRepository,
    id: &str,
    cluster: &PgCluster,
    db: &str,
    options: PgExportOptions,
) -> BackupManifest {
    backup(repo, id, cluster, db, options, ProgressSink::disabled())
        .await
        .unwrap()
}

/// Restores store `id` of the newest backup in `repo` into `db` of `cluster`.
pub async fn restore(
    repo: &BackupRepository,
    id: &str,
    cluster: &PgCluster,
    db: &str,
    options: PgImportOptions,
) -> Result<ImportReport, PgError> {
    let reader = repo.open_latest().await.unwrap();
    let ctx = ImportContext::new(id, reader, ProgressSink::disabled()).unwrap();
    store(id, cluster, db)
        .with_import_options(options)
        .import(ctx)
        .await
        .map_err(pg_error)
}

/// Export options for tests: two workers.
pub fn export_options() -> PgExportOptions {
    PgExportOptions {
        jobs: 2,
        ..PgExportOptions::default()
    }
}

/// Import options for tests: two workers.
pub fn import_options() -> PgImportOptions {
    PgImportOptions {
        jobs: 2,
        ..PgImportOptions::default()
    }
}
