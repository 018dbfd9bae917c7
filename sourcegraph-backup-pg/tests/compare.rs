//! `compare` on real clusters: a database and its exact copy (`CREATE DATABASE ... TEMPLATE`)
//! are identical; a planted one-row change, a moved sequence and a dropped index are each named;
//! on a restored backup, `compare` and the testkit's `pg_dump`-based oracle agree, identical or
//! not; across majors, data and sequences still compare equal and the report warns about the
//! deparsers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{backup_quiet, export_options, import_options, load, local_repo, restore, two_clusters};
use sourcegraph_backup_pg::compare::{compare, Change, CompareOptions, CompareReport};
use sourcegraph_backup_pg::schema::ObjectKind;
use sourcegraph_backup_pg::PgConnectionConfig;
use sourcegraph_backup_testkit::{oracle, ClusterOptions, PgBinaries, PgCluster};

fn conn(cluster: &PgCluster, db: &str) -> PgConnectionConfig {
    PgConnectionConfig::from_url(&cluster.url(db)).unwrap()
}

async fn compare_dbs(src: &PgCluster, src_db: &str, dst: &PgCluster, dst_db: &str) -> CompareReport {
    compare(&conn(src, src_db), &conn(dst, dst_db), &CompareOptions::default())
        .await
        .unwrap()
}

/// The fixtures of a Sourcegraph frontend database for the cluster's major.
fn frontend_fixtures(cluster: &PgCluster) -> Vec<&'static str> {
    let mut fixtures = vec!["frontend.sql"];
    if cluster.major() >= 15 {
        fixtures.push("frontend-pg15.sql");
    }
    fixtures
}

/// An exact copy of `db` named `copy`.
async fn copy_db(cluster: &PgCluster, db: &str, copy: &str) {
    cluster
        .batch_execute("postgres", &format!("CREATE DATABASE {copy} TEMPLATE {db}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_is_identical_and_each_planted_difference_is_named() {
    let cluster = PgCluster::start().await.unwrap();
    load(&cluster, "sg", &frontend_fixtures(&cluster)).await;
    load(&cluster, "hostile", &["adversarial.sql"]).await;
    // A column named like the row alias of the hashing query must not stand in for the row.
    cluster
        .batch_execute(
            "hostile",
            "CREATE TABLE public.alias_clash (t int, u text); INSERT INTO public.alias_clash VALUES (1, 'a')",
        )
        .await
        .unwrap();
    for copy in ["same", "row", "seq", "idx"] {
        copy_db(&cluster, "sg", copy).await;
    }
    copy_db(&cluster, "hostile", "hostile_copy").await;

    // Identical: everything compared, nothing found.
    let report = compare_dbs(&cluster, "sg", &cluster, "same").await;
    assert!(report.is_identical(), "{report}");
    assert!(report.notes.is_empty(), "{report}");
    assert!(
        report.compared.objects > 100 && report.compared.tables >= 20 && report.compared.sequences > 5,
        "{:?}",
        report.compared
    );
    assert!(report.to_string().starts_with("identical"), "{report}");
    // Hostile identifiers and values (quotes, NaN, zero bytes, a 5 MiB value, zero-column
    // tables, partitions, inheritance) hash and quote fine, with one connection or four.
    for jobs in [1, 4] {
        let report = compare(
            &conn(&cluster, "hostile"),
            &conn(&cluster, "hostile_copy"),
            &CompareOptions::default().jobs(jobs),
        )
        .await
        .unwrap();
        assert!(report.is_identical(), "jobs {jobs}: {report}");
        assert!(report.compared.tables > 10, "{:?}", report.compared);
    }
    cluster
        .batch_execute("hostile_copy", "UPDATE public.alias_clash SET u = 'b'")
        .await
        .unwrap();
    let report = compare_dbs(&cluster, "hostile", &cluster, "hostile_copy").await;
    let named: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(named, ["public.alias_clash"], "{report}");

    // One row changed: that table, same row count, another hash.
    cluster
        .batch_execute(
            "row",
            "UPDATE public.users SET display_name = 'planted' WHERE id = (SELECT min(id) FROM public.users)",
        )
        .await
        .unwrap();
    let report = compare_dbs(&cluster, "sg", &cluster, "row").await;
    assert!(
        report.schema.is_empty() && report.sequences.is_empty(),
        "{report}"
    );
    assert_eq!(report.tables.len(), 1, "{report}");
    let users = &report.tables[0];
    assert_eq!(users.table, "public.users");
    assert_eq!(users.change, Change::Different);
    let (s, t) = (users.source.as_ref().unwrap(), users.target.as_ref().unwrap());
    assert_eq!(s.rows, t.rows);
    assert_ne!(s.hash, t.hash);
    assert!(!report.is_identical());
    assert!(
        report.to_string().contains("table: public.users: different"),
        "{report}"
    );
    // A deleted row changes the count too.
    cluster
        .batch_execute(
            "row",
            "DELETE FROM public.migration_logs WHERE id = (SELECT max(id) FROM public.migration_logs)",
        )
        .await
        .unwrap();
    let report = compare_dbs(&cluster, "sg", &cluster, "row").await;
    let named: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(named, ["public.migration_logs", "public.users"], "{report}");
    let logs = &report.tables[0];
    assert_eq!(
        logs.source.as_ref().unwrap().rows,
        logs.target.as_ref().unwrap().rows + 1,
        "{report}"
    );

    // A sequence moved: that sequence, nothing else.
    cluster
        .batch_execute("seq", "SELECT setval('public.users_id_seq', 100000)")
        .await
        .unwrap();
    let report = compare_dbs(&cluster, "sg", &cluster, "seq").await;
    assert!(report.schema.is_empty() && report.tables.is_empty(), "{report}");
    assert_eq!(report.sequences.len(), 1, "{report}");
    let seq = &report.sequences[0];
    assert_eq!(seq.sequence, "public.users_id_seq");
    assert_eq!(seq.change, Change::Different);
    assert_eq!(seq.target.unwrap().last_value, 100000);
    assert!(seq.target.unwrap().is_called);

    // An index dropped: that object, missing in the target; the data is the same.
    cluster
        .batch_execute("idx", "DROP INDEX public.users_created_at_idx")
        .await
        .unwrap();
    let report = compare_dbs(&cluster, "sg", &cluster, "idx").await;
    assert!(
        report.tables.is_empty() && report.sequences.is_empty(),
        "{report}"
    );
    assert_eq!(report.schema.len(), 1, "{report}");
    let index = &report.schema[0];
    assert!(index.identity.contains("users_created_at_idx"), "{index:?}");
    assert_eq!(index.kind, ObjectKind::Index);
    assert_eq!(index.change, Change::Missing);
    assert!(index
        .source_sql
        .as_deref()
        .unwrap()
        .contains("CREATE INDEX users_created_at_idx"));
    assert!(index.target_sql.is_none());
    // The other way round it is extra; with the schema left out, nothing differs.
    let report = compare_dbs(&cluster, "idx", &cluster, "sg").await;
    assert_eq!(report.schema[0].change, Change::Extra, "{report}");
    let report = compare(
        &conn(&cluster, "sg"),
        &conn(&cluster, "idx"),
        &CompareOptions::default().schema(false),
    )
    .await
    .unwrap();
    assert!(report.is_identical(), "{report}");
    assert_eq!(report.compared.objects, 0);

    // The JSON form names every category.
    let report = compare_dbs(&cluster, "sg", &cluster, "row").await;
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["tables"][1]["table"], "public.users");
    assert_eq!(json["tables"][0]["change"], "different");
    assert!(json["schema"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_agrees_with_the_oracle_on_a_restored_backup() {
    let (src, dst) = two_clusters().await;
    load(&src, "sg", &frontend_fixtures(&src)).await;
    dst.create_database("sg").await.unwrap();
    let (_dir, repo) = local_repo();
    backup_quiet(&repo, "pgsql", &src, "sg", export_options()).await;
    restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap();

    let ours = compare_dbs(&src, "sg", &dst, "sg").await;
    let theirs = oracle::compare(&src, "sg", &dst, "sg").await.unwrap();
    assert!(theirs.is_identical(), "{theirs}");
    assert!(ours.is_identical(), "{ours}");
    assert_eq!(ours.compared.sequences, theirs.sequences_compared);

    // Planted: both see the one table.
    dst.batch_execute(
        "sg",
        "UPDATE public.orgs SET display_name = 'planted' WHERE id = (SELECT min(id) FROM public.orgs)",
    )
    .await
    .unwrap();
    let ours = compare_dbs(&src, "sg", &dst, "sg").await;
    let theirs = oracle::compare(&src, "sg", &dst, "sg").await.unwrap();
    assert_eq!(theirs.table_differences.len(), 1, "{theirs}");
    assert!(
        theirs.table_differences[0].starts_with("public.orgs:"),
        "{theirs}"
    );
    let named: Vec<&str> = ours.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(named, ["public.orgs"], "{ours}");
    assert!(ours.schema.is_empty() && theirs.schema_diff.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_majors_rows_and_sequences_compare_equal_and_the_report_warns() {
    let start = |major: u32| async move {
        let binaries = PgBinaries::find_major(major)
            .unwrap_or_else(|e| panic!("PostgreSQL {major} server is needed for this test: {e}"));
        PgCluster::start_with(&binaries, ClusterOptions::default())
            .await
            .unwrap_or_else(|e| panic!("starting a PostgreSQL {major} cluster: {e}"))
    };
    let (src, dst) = tokio::join!(start(12), start(16));
    load(&src, "sg", &["frontend.sql"]).await;
    dst.create_database("sg").await.unwrap();
    let (_dir, repo) = local_repo();
    backup_quiet(&repo, "pgsql", &src, "sg", export_options()).await;
    restore(&repo, "pgsql", &dst, "sg", import_options())
        .await
        .unwrap();

    let report = compare_dbs(&src, "sg", &dst, "sg").await;
    assert_eq!(report.source.server_version_num / 10000, 12);
    assert_eq!(report.target.server_version_num / 10000, 16);
    assert!(
        report.tables.is_empty() && report.sequences.is_empty(),
        "{report}"
    );
    assert_eq!(report.notes.len(), 1, "{report}");
    assert!(report.notes[0].contains("PostgreSQL 12") && report.notes[0].contains("deparse"));
    // Whatever differs in the schema is what the deparsers print differently: view and
    // routine bodies, and a procedure's signature (`IN` from 14 on), which is its identity.
    assert!(
        report.schema.iter().all(|d| matches!(
            d.kind,
            ObjectKind::View | ObjectKind::MaterializedView | ObjectKind::Function | ObjectKind::Procedure
        )),
        "{report}"
    );
    let data_only = compare(
        &conn(&src, "sg"),
        &conn(&dst, "sg"),
        &CompareOptions::default().schema(false),
    )
    .await
    .unwrap();
    assert!(
        data_only.is_identical() && data_only.notes.is_empty(),
        "{data_only}"
    );
    assert!(data_only.compared.tables >= 20, "{:?}", data_only.compared);
}
