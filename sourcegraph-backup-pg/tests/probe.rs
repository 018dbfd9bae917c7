//! Probing real clusters: Sourcegraph bookkeeping (migration_logs, versions, golang-migrate
//! tables), sizes, extensions, and refusing non-Sourcegraph databases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sourcegraph_backup_pg::probe::{MigrationProblem, TableKind};
use sourcegraph_backup_pg::{probe, Database, PgConnectionConfig, PgError, ProbeOptions, ProbeReport};
use sourcegraph_backup_testkit::PgCluster;

/// Sourcegraph's migration_logs (schema version 2) with a history that exercises the ranking:
/// retries, a failed and a pending migration, a revert, backfilled rows and a failed revert.
const FRONTEND_SQL: &str = r#"
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE EXTENSION pg_trgm;
CREATE TABLE migration_logs (
    id SERIAL PRIMARY KEY,
    migration_logs_schema_version integer NOT NULL,
    schema text NOT NULL,
    version integer NOT NULL,
    up boolean NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    success boolean,
    error_message text,
    backfilled boolean NOT NULL DEFAULT false
);
INSERT INTO migration_logs (migration_logs_schema_version, schema, version, up, started_at,
                            finished_at, success, error_message, backfilled) VALUES
 -- applied long ago, recorded by backfill
 (2, 'schema_migrations', 1000, true, now() - interval '300 min', now(), true, NULL, true),
 (2, 'schema_migrations', 1001, true, now() - interval '200 min', now(), true, NULL, false),
 -- failed, then retried successfully: applied
 (2, 'schema_migrations', 1002, true, now() - interval '100 min', now(), false, 'first try', false),
 (2, 'schema_migrations', 1002, true, now() - interval '90 min', now(), true, NULL, false),
 -- applied, then a later attempt failed: failed
 (2, 'schema_migrations', 1003, true, now() - interval '80 min', now(), true, NULL, false),
 (2, 'schema_migrations', 1003, true, now() - interval '70 min', now(), false,
  'duplicate key value violates unique constraint', false),
 -- running (or interrupted): pending
 (2, 'schema_migrations', 1004, true, now() - interval '1 min', NULL, NULL, NULL, false),
 -- applied then reverted: not applied
 (2, 'schema_migrations', 1005, true, now() - interval '60 min', now(), true, NULL, false),
 (2, 'schema_migrations', 1005, false, now() - interval '50 min', now(), true, NULL, false),
 -- a newer backfilled failure loses to the non-backfilled success: applied
 (2, 'schema_migrations', 1006, true, now() - interval '40 min', now(), true, NULL, false),
 (2, 'schema_migrations', 1006, true, now() - interval '10 min', now(), false, 'bf', true),
 -- a finished failed revert is ignored: applied
 (2, 'schema_migrations', 1007, true, now() - interval '30 min', now(), true, NULL, false),
 (2, 'schema_migrations', 1007, false, now() - interval '20 min', now(), false, 'nope', false);
CREATE TABLE versions (
    service text PRIMARY KEY,
    version text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    first_version text NOT NULL,
    auto_upgrade boolean NOT NULL DEFAULT false
);
INSERT INTO versions (service, version, first_version) VALUES ('frontend', '5.11.6271', '5.1.0');
CREATE TABLE repo (id bigserial PRIMARY KEY, name citext NOT NULL, meta hstore);
INSERT INTO repo (name, meta)
  SELECT 'github.com/org/repo' || g, hstore('k', g::text) FROM generate_series(1, 1000) g;
CREATE TABLE event_logs (id bigint, ts timestamptz NOT NULL) PARTITION BY RANGE (ts);
CREATE TABLE event_logs_2024 PARTITION OF event_logs
  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
ANALYZE;
"#;

async fn cluster_with(dbs: &[(&str, &str)]) -> PgCluster {
    let cluster = PgCluster::start().await.unwrap();
    for (db, sql) in dbs {
        cluster.create_database(db).await.unwrap();
        cluster.batch_execute(db, sql).await.unwrap();
    }
    cluster
}

async fn probe_db(cluster: &PgCluster, db: &str, allow_generic: bool) -> Result<ProbeReport, PgError> {
    let client = PgConnectionConfig::from_url(&cluster.url(db))
        .unwrap()
        .connect()
        .await
        .unwrap();
    probe(&client, ProbeOptions { allow_generic }).await
}

#[tokio::test]
async fn frontend_database_with_migration_history() {
    let cluster = cluster_with(&[("sg", FRONTEND_SQL)]).await;
    let r = probe_db(&cluster, "sg", false).await.unwrap();

    assert_eq!(r.database, "sg");
    assert_eq!(u32::try_from(r.major).unwrap(), cluster.major());
    assert_eq!(r.server_version_num / 10000, r.major);
    assert!(r.server_version.starts_with(&r.major.to_string()));
    assert_eq!(r.encoding, "UTF8");
    assert!(!r.lc_collate.is_empty() && !r.lc_ctype.is_empty());
    assert!(r.database_bytes > 1_000_000);

    let ext: Vec<&str> = r.extensions.iter().map(|e| e.name.as_str()).collect();
    for want in ["citext", "hstore", "pg_trgm", "plpgsql"] {
        assert!(ext.contains(&want), "{want} missing from {ext:?}");
    }
    assert!(r.extensions.iter().all(|e| !e.version.is_empty()));

    let repo = r.tables.iter().find(|t| t.name == "repo").unwrap();
    assert_eq!(repo.schema, "public");
    assert_eq!(repo.kind, TableKind::Ordinary);
    assert_eq!(repo.estimated_rows, Some(1000));
    assert!(repo.relation_bytes > 0);
    assert!(
        repo.total_bytes > repo.relation_bytes,
        "indexes count in the total"
    );
    let parent = r.tables.iter().find(|t| t.name == "event_logs").unwrap();
    assert_eq!(parent.kind, TableKind::Partitioned);
    assert!(r.tables.iter().any(|t| t.name == "event_logs_2024"));
    assert!(r.tables.iter().all(|t| t.schema != "pg_catalog"));

    assert!(r.is_sourcegraph && r.has_migration_logs);
    assert_eq!(r.schema(), Some(Database::Frontend));
    assert_eq!(r.migrations.len(), 1);
    let m = &r.migrations[0];
    assert_eq!(m.schema_name, "schema_migrations");
    assert_eq!(m.applied_count, 5, "1000, 1001, 1002, 1006, 1007: {m:?}");
    assert_eq!(m.latest_applied, Some(1007));
    assert_eq!(r.latest_migration(), Some(1007));
    assert_eq!(
        m.failed,
        vec![MigrationProblem {
            version: 1003,
            up: true,
            error_message: Some("duplicate key value violates unique constraint".into()),
        }]
    );
    assert_eq!(m.pending.iter().map(|p| p.version).collect::<Vec<_>>(), [1004]);
    assert!(r.has_migration_problems());

    let v = r.product_version.as_ref().unwrap();
    assert_eq!(v.version.as_deref(), Some("5.11.6271"));
    assert_eq!(v.first_version.as_deref(), Some("5.1.0"));
    assert!(r.legacy_migrations.is_empty());

    let warnings = r.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("1003") && warnings[0].contains("duplicate key"));
    assert!(warnings[1].contains("1004") && warnings[1].contains("in progress"));

    // The report is what goes into the manifest: it must survive a JSON round trip.
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<ProbeReport>(&json).unwrap(), r);
}

/// An older migration_logs layout (no backfilled, no error_message) in a code-intel database,
/// and a pre-3.37 database with golang-migrate's `schema_migrations(version, dirty)` and a
/// `versions` table without `first_version`.
#[tokio::test]
async fn older_layouts_codeintel_and_legacy() {
    let codeintel = r"
        CREATE TABLE migration_logs (id serial PRIMARY KEY, migration_logs_schema_version int,
            schema text, version int, up bool, started_at timestamptz, finished_at timestamptz,
            success bool);
        INSERT INTO migration_logs (schema, version, up, started_at, finished_at, success) VALUES
            ('codeintel_schema_migrations', 2001, true, now() - interval '2 min', now(), true),
            ('codeintel_schema_migrations', 2002, true, now() - interval '1 min', now(), true);
    ";
    let legacy = r"
        CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
        INSERT INTO schema_migrations VALUES (1528395834, true);
        CREATE TABLE versions (service text PRIMARY KEY, version text NOT NULL);
        INSERT INTO versions VALUES ('frontend', '3.36.3');
    ";
    let cluster = cluster_with(&[("ci", codeintel), ("old", legacy)]).await;

    let ci = probe_db(&cluster, "ci", false).await.unwrap();
    assert_eq!(ci.schema(), Some(Database::CodeIntel));
    assert_eq!(ci.migrations[0].applied_count, 2);
    assert_eq!(ci.latest_migration(), Some(2002));
    assert!(ci.product_version.is_none());
    assert!(ci.warnings().is_empty(), "{:?}", ci.warnings());
    assert!(!ci.has_migration_problems());

    let old = probe_db(&cluster, "old", false).await.unwrap();
    assert!(old.is_sourcegraph && !old.has_migration_logs);
    assert_eq!(old.schema(), Some(Database::Frontend));
    assert_eq!(old.legacy_migrations.len(), 1);
    assert_eq!(old.legacy_migrations[0].dirty, Some(true));
    assert_eq!(old.latest_migration(), Some(1528395834));
    let v = old.product_version.as_ref().unwrap();
    assert_eq!(v.version.as_deref(), Some("3.36.3"));
    assert_eq!(v.first_version, None);
    assert!(old
        .warnings()
        .iter()
        .any(|w| w.contains("dirty at version 1528395834")));
}

#[tokio::test]
async fn generic_database_is_refused_unless_allowed() {
    // A Rails-style schema_migrations (no `dirty` column) does not make it a Sourcegraph DB.
    let plain = r"
        CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
        CREATE TABLE t (id int PRIMARY KEY, v text);
        INSERT INTO t SELECT g, 'x' FROM generate_series(1, 10) g;
    ";
    let cluster = cluster_with(&[("plain", plain)]).await;

    let err = probe_db(&cluster, "plain", false).await.unwrap_err();
    assert!(
        matches!(&err, PgError::NotSourcegraph { database } if database == "plain"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("\"plain\"") && msg.contains("allow_generic"),
        "{msg}"
    );

    let r = probe_db(&cluster, "plain", true).await.unwrap();
    assert!(!r.is_sourcegraph);
    assert_eq!(r.schema(), None);
    assert!(r.migrations.is_empty() && r.legacy_migrations.is_empty());
    assert!(r.tables.iter().any(|t| t.name == "t"));
    assert!(r.warnings()[0].contains("not a Sourcegraph database"));
}
