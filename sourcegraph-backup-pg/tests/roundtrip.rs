//! Backup and restore through the backup repository, checked by the oracle: the schema dumps
//! of source and target are identical text, every table has the same rows, every sequence
//! the same state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    assert_identical, backup, backup_quiet, export_options, import_options, load, local_repo, restore,
    two_clusters,
};
use sourcegraph_backup_core::{ProgressEvent, ProgressSink};
use sourcegraph_backup_pg::layout::PgStoreDetails;
use sourcegraph_backup_pg::{PgExportOptions, PgImportReport, TableDataExclusion};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frontend_fixture_round_trips_with_split_tables() {
    let (src, dst) = two_clusters().await;
    let mut fixtures = vec!["frontend.sql"];
    if src.major() >= 15 {
        fixtures.push("frontend-pg15.sql");
    }
    load(&src, "sg", &fixtures).await;
    dst.create_database("sg").await.unwrap();

    let (_dir, repo) = local_repo();
    let (progress, mut events) = ProgressSink::channel();
    // A tiny split threshold makes every non-trivial table split into ctid ranges.
    let options = PgExportOptions {
        split_threshold_bytes: 16 * 1024,
        ..export_options()
    };
    let manifest = backup(&repo, "pgsql", &src, "sg", options, progress)
        .await
        .unwrap();
    let section = manifest.store("pgsql").unwrap();
    let details: PgStoreDetails = serde_json::from_value(section.details.clone()).unwrap();
    assert!(details.probe.is_sourcegraph);
    assert_eq!(manifest.source.sourcegraph_version.as_deref(), Some("5.9.0"));
    let users = details.tables.iter().find(|t| t.name == "users").unwrap();
    assert_eq!(users.rows, 300);
    assert!(
        details.tables.iter().any(|t| t.artifacts.len() > 1),
        "no table was split: {:?}",
        details
            .tables
            .iter()
            .map(|t| (&t.name, t.artifacts.len()))
            .collect::<Vec<_>>()
    );
    for name in [
        "schema.json.zst",
        "schema.pre-data.sql.zst",
        "schema.post-data.sql.zst",
        "sequences.sql.zst",
        "restore.sh",
    ] {
        assert!(section.artifact(name).is_some(), "missing artifact {name}");
    }
    let mut rows_seen = 0u64;
    while let Ok(e) = events.try_recv() {
        if let ProgressEvent::Rows { rows, .. } = e {
            rows_seen += rows;
        }
    }
    assert_eq!(rows_seen, details.tables.iter().map(|t| t.rows).sum::<u64>());

    let report = restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains("Sourcegraph 5.9.0")),
        "{:?}",
        report.warnings
    );
    let typed: PgImportReport = serde_json::from_value(report.details.clone()).unwrap();
    assert_eq!(typed.database, "sg");
    assert_eq!(typed.sourcegraph_version.as_deref(), Some("5.9.0"));
    assert_eq!(typed.tables_loaded, details.tables.len());
    assert_eq!(typed.rows, details.tables.iter().map(|t| t.rows).sum::<u64>());
    assert!(typed.post_data_steps > 0 && typed.timings.jobs > 0, "{typed:?}");
    let oracle = assert_identical(&src, "sg", &dst, "sg").await;
    assert!(
        oracle.tables_compared >= 20 && oracle.sequences_compared > 5,
        "{oracle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adversarial_fixture_round_trips() {
    let (src, dst) = two_clusters().await;
    load(&src, "adv", &["adversarial.sql"]).await;
    dst.create_database("adv").await.unwrap();
    let (_dir, repo) = local_repo();

    // Not a Sourcegraph database: refused unless opted in.
    let refused = backup(
        &repo,
        "pgsql",
        &src,
        "adv",
        export_options(),
        ProgressSink::disabled(),
    )
    .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not a Sourcegraph database")),
        "{refused:?}"
    );
    let options = PgExportOptions {
        allow_generic: true,
        split_threshold_bytes: 64 * 1024,
        ..export_options()
    };
    backup_quiet(&repo, "pgsql", &src, "adv", options).await;
    restore(&repo, "pgsql", &dst, "adv", import_options())
        .await
        .unwrap();
    assert_identical(&src, "adv", &dst, "adv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn excluded_table_data_keeps_the_schema_and_names_the_reason() {
    let (src, dst) = two_clusters().await;
    load(&src, "sg", &["frontend.sql"]).await;
    dst.create_database("sg").await.unwrap();
    let (_dir, repo) = local_repo();
    let options = PgExportOptions {
        // The catalog class "usage statistics and event logs", as a plan would exclude it.
        exclude_table_data: TableDataExclusion::for_catalog_row("usage-statistics").unwrap(),
        ..export_options()
    };
    let manifest = backup_quiet(&repo, "pgsql", &src, "sg", options).await;
    let details: PgStoreDetails =
        serde_json::from_value(manifest.store("pgsql").unwrap().details.clone()).unwrap();
    assert!(details
        .excluded
        .iter()
        .any(|e| e.qualified_name.contains("event_logs") && e.reason.contains("used by admins for audit")));
    assert!(TableDataExclusion::for_catalog_row("organizations").is_none());
    assert!(!details.tables.iter().any(|t| t.name.starts_with("event_logs")));

    let report = restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap();
    assert!(report
        .warnings
        .iter()
        .any(|w| w.contains("event_logs") && w.contains("usage-statistics")));
    let client = dst.connect("sg").await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM event_logs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let n: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn codeintel_and_codeinsights_fixtures_round_trip() {
    let (src, dst) = two_clusters().await;
    let (_dir, repo) = local_repo();
    for (store, db, fixture) in [
        ("codeintel-db", "codeintel", "codeintel.sql"),
        ("codeinsights-db", "codeinsights", "codeinsights.sql"),
    ] {
        load(&src, db, &[fixture]).await;
        dst.create_database(db).await.unwrap();
        backup_quiet(&repo, store, &src, db, export_options()).await;
        restore(&repo, store, &dst, db, import_options()).await.unwrap();
        let report = assert_identical(&src, db, &dst, db).await;
        assert!(report.tables_compared > 3, "{db}: {report:?}");
    }
}
