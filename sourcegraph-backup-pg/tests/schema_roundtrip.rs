//! The native schema extractor round-trips every fixture: extract from database A, apply the
//! rendered pre-data and post-data DDL to an empty database B, and `pg_dump --schema-only` of
//! A and B must be identical text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use sourcegraph_backup_pg::schema::{
    extract_schema, ExtractOptions, Incompatibility, ObjectKind, RenderOptions, SchemaDump,
};
use sourcegraph_backup_pg::PgError;
use sourcegraph_backup_testkit::{oracle, PgClientTools, PgCluster};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sourcegraph-backup-testkit/fixtures")
        .join(name)
}

/// Extracts the schema of `db` inside a read-only repeatable-read transaction, as the
/// exporter does.
async fn extract(cluster: &PgCluster, db: &str) -> Result<SchemaDump, PgError> {
    let client = cluster.connect(db).await.unwrap();
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .unwrap();
    let dump = extract_schema(&client, &ExtractOptions::default()).await;
    client.batch_execute("COMMIT").await.unwrap();
    dump
}

/// Runs a script on `db`, panicking with the server's own message (and the script) on error.
async fn apply(cluster: &PgCluster, db: &str, what: &str, sql: &str) {
    let client = cluster.connect(db).await.unwrap();
    if let Err(e) = client.batch_execute(sql).await {
        let msg = e.as_db_error().map(|d| format!("{d:?}")).unwrap_or_else(|| e.to_string());
        panic!("{what} failed: {msg}\n{sql}");
    }
}

fn line_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (sa, sb): (BTreeSet<&str>, BTreeSet<&str>) =
        (a.iter().copied().collect(), b.iter().copied().collect());
    let mut out = String::new();
    for l in a.iter().filter(|l| !sb.contains(*l)).take(40) {
        out += &format!("- {l}\n");
    }
    for l in b.iter().filter(|l| !sa.contains(*l)).take(40) {
        out += &format!("+ {l}\n");
    }
    out
}

/// Loads `fixtures` into a fresh database, round-trips its schema into another one and
/// compares `pg_dump --schema-only` of both. `steps` applies post-data step by step (the
/// parallel path) instead of the single script.
async fn roundtrip(cluster: &PgCluster, name: &str, fixtures: &[&str], steps: bool) -> SchemaDump {
    let src = format!("{name}_src");
    let dst = format!("{name}_dst");
    cluster.create_database(&src).await.unwrap();
    for f in fixtures {
        cluster.execute_sql_file(&src, &fixture(f)).await.unwrap();
    }
    let dump = extract(cluster, &src).await.unwrap();
    // The dump is stored as JSON in the backup: it must survive that.
    let json = serde_json::to_string(&dump).unwrap();
    let dump: SchemaDump = serde_json::from_str(&json).unwrap();

    let opts = RenderOptions {
        target_server_version_num: dump.server_version_num,
        ..RenderOptions::default()
    };
    cluster.create_database(&dst).await.unwrap();
    let pre = dump.pre_data_sql(&opts);
    apply(cluster, &dst, "pre-data", &pre).await;
    if steps {
        let client = cluster.connect(&dst).await.unwrap();
        client
            .batch_execute(SchemaDump::session_setup_sql())
            .await
            .unwrap();
        let mut done = BTreeSet::new();
        for step in dump.post_data_steps() {
            for d in &step.depends_on {
                assert!(done.contains(d), "{} runs before its dependency {d}", step.identity);
            }
            if let Err(e) = client.batch_execute(&step.sql).await {
                panic!("post-data step {} failed: {:?}\n{}", step.identity, e.as_db_error(), step.sql);
            }
            done.insert(step.identity.clone());
        }
    } else {
        let post = dump.post_data_sql(&opts);
        apply(cluster, &dst, "post-data", &post).await;
    }

    let tools = PgClientTools::for_server_major(cluster.major()).unwrap();
    let a = oracle::schema_dump(&tools, cluster, &src).await.unwrap();
    let b = oracle::schema_dump(&tools, cluster, &dst).await.unwrap();
    assert!(a.contains("CREATE TABLE"), "empty schema dump of {src}");
    assert!(
        a == b,
        "pg_dump --schema-only differs for {name}:\n{}",
        line_diff(&a, &b)
    );
    dump
}

#[tokio::test]
async fn frontend_fixture_round_trips() {
    let cluster = PgCluster::start().await.unwrap();
    let mut fixtures = vec!["frontend.sql"];
    if cluster.major() >= 15 {
        fixtures.push("frontend-pg15.sql");
    }
    let dump = roundtrip(&cluster, "frontend", &fixtures, false).await;

    let kinds: BTreeSet<ObjectKind> = dump.objects.iter().map(|o| o.kind).collect();
    for k in [
        ObjectKind::Extension,
        ObjectKind::EnumType,
        ObjectKind::CompositeType,
        ObjectKind::Function,
        ObjectKind::Procedure,
        ObjectKind::Aggregate,
        ObjectKind::Sequence,
        ObjectKind::Table,
        ObjectKind::View,
        ObjectKind::MaterializedView,
        ObjectKind::PrimaryKey,
        ObjectKind::ForeignKey,
        ObjectKind::ExclusionConstraint,
        ObjectKind::Index,
        ObjectKind::Trigger,
        ObjectKind::Policy,
        ObjectKind::RowSecurity,
    ] {
        assert!(kinds.contains(&k), "no {k:?} extracted from the frontend fixture");
    }
    let hash = dump
        .tables
        .iter()
        .find(|t| t.name == "critical_and_site_config")
        .unwrap();
    assert!(!hash.columns_for_copy.contains(&"redacted_contents_hash".to_string()));
    assert!(dump.extensions.iter().all(|e| e.name != "plpgsql"));
}

#[tokio::test]
async fn adversarial_fixture_round_trips_step_by_step() {
    let cluster = PgCluster::start().await.unwrap();
    let dump = roundtrip(&cluster, "adversarial", &["adversarial.sql"], true).await;
    let select = dump.tables.iter().find(|t| t.name == "select").unwrap();
    assert!(select.columns_for_copy.contains(&"from".to_string()));
    assert!(select.quoted_columns_for_copy.contains(&"\"from\"".to_string()));
}

#[tokio::test]
async fn codeintel_and_codeinsights_fixtures_round_trip() {
    let cluster = PgCluster::start().await.unwrap();
    roundtrip(&cluster, "codeintel", &["codeintel.sql"], false).await;
    roundtrip(&cluster, "codeinsights", &["codeinsights.sql"], true).await;
}

#[tokio::test]
async fn unsupported_objects_are_refused_by_name() {
    let cluster = PgCluster::start().await.unwrap();
    cluster.create_database("tsconf").await.unwrap();
    cluster
        .batch_execute(
            "tsconf",
            "CREATE TABLE t (id int); \
             CREATE TEXT SEARCH CONFIGURATION public.my_english (COPY = pg_catalog.english);",
        )
        .await
        .unwrap();
    match extract(&cluster, "tsconf").await {
        Err(PgError::UnsupportedObject { kind, name }) => {
            assert_eq!(kind, "text search configuration");
            assert_eq!(name, "public.my_english");
        }
        other => panic!("expected UnsupportedObject, got {other:?}"),
    }

    cluster.create_database("fdw").await.unwrap();
    cluster
        .batch_execute(
            "fdw",
            "CREATE EXTENSION file_fdw; \
             CREATE SERVER files FOREIGN DATA WRAPPER file_fdw; \
             CREATE FOREIGN TABLE \"Weird \"\"ft\"\"\" (a text) SERVER files \
               OPTIONS (filename '/dev/null');",
        )
        .await
        .unwrap();
    match extract(&cluster, "fdw").await {
        Err(PgError::UnsupportedObject { kind, name }) => {
            assert_eq!(kind, "foreign server");
            assert_eq!(name, "files");
        }
        other => panic!("expected UnsupportedObject, got {other:?}"),
    }
    cluster
        .batch_execute("fdw", "DROP SERVER files CASCADE")
        .await
        .unwrap();
    // The wrapper itself belongs to the extension: fine once the server is gone.
    extract(&cluster, "fdw").await.unwrap();
}

#[tokio::test]
async fn check_target_reports_features_and_extensions_the_target_lacks() {
    let cluster = PgCluster::start().await.unwrap();
    assert!(cluster.major() >= 15, "this test needs a 15+ server");
    cluster.create_database("modern").await.unwrap();
    cluster
        .batch_execute(
            "modern",
            "CREATE EXTENSION citext; \
             CREATE TABLE t (id int, name citext); \
             CREATE VIEW v WITH (security_invoker = true) AS SELECT id FROM t; \
             CREATE UNLOGGED SEQUENCE s;",
        )
        .await
        .unwrap();
    let dump = extract(&cluster, "modern").await.unwrap();
    let available: BTreeSet<String> = ["hstore".to_string()].into();
    let problems = dump.check_target(120000, &available).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        problems.iter().any(|p| matches!(p,
            Incompatibility::ServerTooOld { identity, min_server_version: 150000, .. }
                if identity == "table public.v")),
        "{text:?}"
    );
    assert!(
        problems.iter().any(|p| matches!(p,
            Incompatibility::ServerTooOld { identity, .. } if identity == "sequence public.s")),
        "{text:?}"
    );
    assert!(
        problems.iter().any(|p| matches!(p,
            Incompatibility::MissingExtension { name, .. } if name == "citext")),
        "{text:?}"
    );
    let all: BTreeSet<String> = ["citext".to_string()].into();
    dump.check_target(dump.server_version_num, &all).unwrap();
}
