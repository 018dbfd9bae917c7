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
use sourcegraph_backup_testkit::{oracle, ClusterOptions, PgBinaries, PgClientTools, PgCluster};

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
        let msg = e
            .as_db_error()
            .map(|d| format!("{d:?}"))
            .unwrap_or_else(|| e.to_string());
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
        for step in dump.post_data_steps(&opts) {
            for d in &step.depends_on {
                assert!(
                    done.contains(d),
                    "{} runs before its dependency {d}",
                    step.identity
                );
            }
            if let Err(e) = client.batch_execute(&step.sql).await {
                panic!(
                    "post-data step {} failed: {:?}\n{}",
                    step.identity,
                    e.as_db_error(),
                    step.sql
                );
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
    assert!(!hash
        .columns_for_copy
        .contains(&"redacted_contents_hash".to_string()));
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

/// Every fixture round-trips on the oldest and a newer supported major (catalog differences:
/// no `tgparentid` on 12, cloned partition triggers marked internal, `attstattarget`, ...).
async fn all_fixtures_on_major(major: u32) {
    let binaries = PgBinaries::find_major(major).unwrap_or_else(|e| {
        panic!("PostgreSQL {major} server needed (run scripts/install-test-deps.sh or .ci/run): {e}")
    });
    let cluster = PgCluster::start_with(&binaries, ClusterOptions::default())
        .await
        .unwrap();
    let mut frontend = vec!["frontend.sql"];
    if major >= 15 {
        frontend.push("frontend-pg15.sql");
    }
    roundtrip(&cluster, "frontend", &frontend, true).await;
    roundtrip(&cluster, "adversarial", &["adversarial.sql"], false).await;
    roundtrip(&cluster, "codeintel", &["codeintel.sql"], true).await;
    roundtrip(&cluster, "codeinsights", &["codeinsights.sql"], false).await;
}

#[tokio::test]
async fn all_fixtures_round_trip_on_postgres_12() {
    all_fixtures_on_major(12).await;
}

#[tokio::test]
async fn all_fixtures_round_trip_on_postgres_16() {
    all_fixtures_on_major(16).await;
}

/// Restores a 12 source's schema into a 16 server and compares it with a reference made on the
/// same 16 server by pg_dump 16 + pg_restore 16 (12 and 16 deparse views differently, so the
/// source itself is no reference).
#[tokio::test]
async fn schema_from_postgres_12_restores_into_16_like_pg_restore() {
    let find = |major: u32| {
        PgBinaries::find_major(major).unwrap_or_else(|e| {
            panic!("PostgreSQL {major} server needed (run scripts/install-test-deps.sh or .ci/run): {e}")
        })
    };
    let src = PgCluster::start_with(&find(12), ClusterOptions::default())
        .await
        .unwrap();
    let dst = PgCluster::start_with(&find(16), ClusterOptions::default())
        .await
        .unwrap();
    let tools = PgClientTools::for_server_major(16).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (name, fixtures) in [
        ("frontend", vec!["frontend.sql"]),
        ("adversarial", vec!["adversarial.sql"]),
        ("codeintel", vec!["codeintel.sql"]),
    ] {
        src.create_database(name).await.unwrap();
        for f in &fixtures {
            src.execute_sql_file(name, &fixture(f)).await.unwrap();
        }
        let dump = extract(&src, name).await.unwrap();
        let available: BTreeSet<String> = dst
            .connect("postgres")
            .await
            .unwrap()
            .query("SELECT name::text FROM pg_available_extensions", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        dump.check_target(160000, &available).unwrap();
        let opts = RenderOptions {
            target_server_version_num: 160000,
            ..RenderOptions::default()
        };
        dst.create_database(name).await.unwrap();
        apply(&dst, name, "pre-data", &dump.pre_data_sql(&opts)).await;
        apply(&dst, name, "post-data", &dump.post_data_sql(&opts)).await;

        let archive = tmp.path().join(format!("{name}.dump"));
        let status = tools
            .command("pg_dump")
            .args(["--schema-only", "-Fc", "-f"])
            .arg(&archive)
            .arg("--dbname")
            .arg(src.url(name))
            .status()
            .unwrap();
        assert!(status.success(), "pg_dump of {name} failed");
        let reference = format!("{name}_ref");
        dst.create_database(&reference).await.unwrap();
        let status = tools
            .command("pg_restore")
            .args(["--no-owner", "--no-acl", "--exit-on-error", "--dbname"])
            .arg(dst.url(&reference))
            .arg(&archive)
            .status()
            .unwrap();
        assert!(status.success(), "pg_restore of {name} failed");

        let ours = oracle::schema_dump(&tools, &dst, name).await.unwrap();
        let theirs = oracle::schema_dump(&tools, &dst, &reference).await.unwrap();
        assert!(ours.contains("CREATE TABLE"));
        assert!(
            ours == theirs,
            "12 -> 16 restore of {name} differs from pg_restore's:\n{}",
            line_diff(&theirs, &ours)
        );
    }
}

/// Owners and grants are restored when asked for, through the role map.
#[tokio::test]
async fn owners_and_grants_are_restored_on_request_through_the_role_map() {
    let cluster = PgCluster::start().await.unwrap();
    cluster
        .batch_execute(
            "postgres",
            "CREATE ROLE sg_owner; CREATE ROLE sg_reader; CREATE ROLE \"new owner\";",
        )
        .await
        .unwrap();
    cluster.create_database("acl_src").await.unwrap();
    cluster
        .batch_execute(
            "acl_src",
            "CREATE SCHEMA app AUTHORIZATION sg_owner; \
             CREATE TABLE app.t (id serial PRIMARY KEY, v text); \
             ALTER TABLE app.t OWNER TO sg_owner; \
             GRANT SELECT, INSERT ON app.t TO sg_reader; \
             GRANT USAGE ON SCHEMA app TO sg_reader WITH GRANT OPTION; \
             CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
             ALTER FUNCTION app.f() OWNER TO sg_owner; \
             GRANT EXECUTE ON FUNCTION app.f() TO sg_reader;",
        )
        .await
        .unwrap();
    let dump = extract(&cluster, "acl_src").await.unwrap();
    let t = dump.object("table app.t").unwrap();
    assert_eq!(t.owner.as_deref(), Some("sg_owner"));
    assert!(t
        .acl
        .iter()
        .any(|a| a.grantee.as_deref() == Some("sg_reader") && a.privilege == "SELECT"));

    // Default rendering: no owners, no grants.
    let plain = dump.pre_data_sql(&RenderOptions::default());
    assert!(
        !plain.contains("OWNER TO") && !plain.contains("GRANT "),
        "{plain}"
    );

    // Same roles: pg_dump with owners and privileges matches.
    let opts = RenderOptions {
        include_owners: true,
        include_acl: true,
        ..RenderOptions::default()
    };
    cluster.create_database("acl_dst").await.unwrap();
    apply(&cluster, "acl_dst", "pre-data", &dump.pre_data_sql(&opts)).await;
    apply(&cluster, "acl_dst", "post-data", &dump.post_data_sql(&opts)).await;
    let tools = PgClientTools::for_server_major(cluster.major()).unwrap();
    let full_dump = |db: &str| {
        let out = tools
            .command("pg_dump")
            .args(["--schema-only", "--dbname"])
            .arg(cluster.url(db))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| {
                !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (a, b) = (full_dump("acl_src"), full_dump("acl_dst"));
    assert!(
        a.contains("GRANT SELECT,INSERT ON TABLE app.t TO sg_reader"),
        "{a}"
    );
    assert!(a == b, "owners/grants differ:\n{}", line_diff(&a, &b));

    // A role map renames the owner.
    let mut mapped = opts.clone();
    mapped.role_map.insert("sg_owner".into(), "new owner".into());
    let sql = dump.pre_data_sql(&mapped);
    assert!(sql.contains("ALTER TABLE app.t OWNER TO \"new owner\";"), "{sql}");
}
