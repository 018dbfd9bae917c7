//! Managed Postgres (RDS, Cloud SQL, AlloyDB, Azure Flexible Server), both directions, without
//! a superuser: the source database and the target database each belong to a `LOGIN
//! NOSUPERUSER` role, extensions were created beforehand by the superuser (the provider's
//! administrator), and the tool connects as the owner only. Every fixture restores through the
//! oracle on 16 → 16 and 12 → 16; what the owner may not do is refused before any write, by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{fixture, import_options, local_repo};
use sourcegraph_backup_core::{BackupRepository, ImportContext, ImportReport, ProgressSink};
use sourcegraph_backup_core::{Exporter, Importer};
use sourcegraph_backup_pg::schema::RenderOptions;
use sourcegraph_backup_pg::{PgConnectionConfig, PgError, PgImportOptions, PgStore};
use sourcegraph_backup_testkit::{oracle, ClusterOptions, PgBinaries, PgCluster};

const SOURCE_OWNER: &str = "sg_source_owner";
const TARGET_OWNER: &str = "sg_target_owner";

/// What a provider's administrator creates for Sourcegraph.
const PROVIDER_EXTENSIONS: &[&str] = &[
    "citext",
    "hstore",
    "intarray",
    "pg_trgm",
    "pgcrypto",
    "pg_stat_statements",
];

/// The databases of an instance and the fixtures each is loaded with.
fn databases(major: u32) -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let mut frontend = vec!["frontend.sql", "adversarial.sql"];
    if major >= 15 {
        frontend.insert(1, "frontend-pg15.sql");
    }
    vec![
        ("pgsql", "sg", frontend),
        ("codeintel-db", "codeintel", vec!["codeintel.sql"]),
        ("codeinsights-db", "codeinsights", vec!["codeinsights.sql"]),
    ]
}

async fn cluster(major: u32) -> PgCluster {
    let binaries = PgBinaries::find_major(major)
        .unwrap_or_else(|e| panic!("PostgreSQL {major} server is needed for this test: {e}"));
    PgCluster::start_with(&binaries, ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("starting a PostgreSQL {major} cluster: {e}"))
}

/// Loads `fixtures` into a managed database `db`, connected as its owner: what the owner may
/// not run (commenting the administrator's extensions) is left out, as a real owner would.
async fn load_as_owner(cluster: &PgCluster, db: &str, fixtures: &[&str]) {
    cluster
        .create_managed_database(db, SOURCE_OWNER, PROVIDER_EXTENSIONS)
        .await
        .unwrap();
    let client = cluster.connect_as(SOURCE_OWNER, db).await.unwrap();
    for f in fixtures {
        let sql: String = std::fs::read_to_string(fixture(f))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("COMMENT ON EXTENSION"))
            .map(|l| format!("{l}\n"))
            .collect();
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("loading {f} as {SOURCE_OWNER}: {e:?}"));
    }
}

fn store_as(id: &str, cluster: &PgCluster, role: &str, db: &str) -> PgStore {
    PgStore::new(
        id,
        PgConnectionConfig::from_url(&cluster.url_as(role, db)).unwrap(),
    )
}

/// Backs up every database of `src`, each as its owner, into one repository.
async fn backup_as_owner(
    src: &PgCluster,
    dbs: &[(&'static str, &'static str, Vec<&'static str>)],
) -> BackupRepository {
    let (dir, repo) = local_repo();
    std::mem::forget(dir); // the repository outlives this helper; the OS temp dir cleans up
    for (id, db, _) in dbs {
        let store = store_as(id, src, SOURCE_OWNER, db);
        let writer = repo.start_backup(sourcegraph_backup_core::BackupOption::AllPostgres);
        let ctx = sourcegraph_backup_core::ExportContext::new(*id, writer.clone(), ProgressSink::disabled());
        let report = store
            .export(ctx)
            .await
            .unwrap_or_else(|e| panic!("backing up {db} as {SOURCE_OWNER}: {e}"));
        let section = sourcegraph_backup_core::StoreSection {
            id: (*id).into(),
            kind: sourcegraph_backup_core::DataStore::kind(&store),
            catalog: vec![],
            details: report.details,
            warnings: report.warnings,
        };
        writer
            .commit(vec![section], None, report.source, vec![])
            .await
            .unwrap();
    }
    repo
}

/// Restores store `id` of the newest backup holding it into `db` of `dst` as `role`.
async fn restore_as(
    repo: &BackupRepository,
    id: &str,
    dst: &PgCluster,
    role: &str,
    db: &str,
    options: PgImportOptions,
) -> Result<ImportReport, PgError> {
    for summary in repo.list().await.unwrap() {
        let reader = repo.open_backup(&summary.id).await.unwrap();
        if reader.manifest().store(id).is_some() {
            let ctx = ImportContext::new(id, reader, ProgressSink::disabled()).unwrap();
            return store_as(id, dst, role, db)
                .with_import_options(options)
                .import(ctx)
                .await
                .map_err(common::pg_error);
        }
    }
    panic!("no backup holds store {id}");
}

/// Relations, routines and types of `db` not owned by `role`, outside extensions and besides
/// what the server creates with another object (a range type's constructors belong to the
/// bootstrap superuser whoever creates the type).
async fn not_owned_by(cluster: &PgCluster, db: &str, role: &str) -> (i64, Vec<String>) {
    let client = cluster.connect(db).await.unwrap();
    let owned: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' \
               AND c.relowner = $1::text::regrole",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    let others: Vec<String> = client
        .query(
            "SELECT format('%s %s owned by %s', kind, name, owner) FROM ( \
               SELECT 'relation' AS kind, c.oid::regclass::text AS name, c.relowner::regrole::text AS owner, \
                      c.oid AS oid, 'pg_class'::regclass AS cls, c.relnamespace AS nsp \
               FROM pg_class c WHERE c.relkind IN ('r','p','v','m','S','i','I') \
               UNION ALL SELECT 'routine', p.oid::regprocedure::text, p.proowner::regrole::text, p.oid, \
                      'pg_proc'::regclass, p.pronamespace FROM pg_proc p \
               UNION ALL SELECT 'type', t.oid::regtype::text, t.typowner::regrole::text, t.oid, \
                      'pg_type'::regclass, t.typnamespace FROM pg_type t \
                 WHERE t.typtype IN ('e','d','r') ) o \
             JOIN pg_namespace n ON n.oid = o.nsp \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' \
               AND o.owner <> $1 \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.cls AND d.objid = o.oid \
                               AND d.deptype IN ('e', 'i')) \
             ORDER BY 1",
            &[&role],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (owned, others)
}

/// Restores every database into managed databases of `dst` and returns every difference from
/// the oracle: against the source on the same major, against a pg_dump/pg_restore reference
/// on the target otherwise.
async fn restore_all_and_compare(
    label: &str,
    repo: &BackupRepository,
    src: &PgCluster,
    dst: &PgCluster,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, db, _) in databases(src.major()) {
        dst.create_managed_database(db, TARGET_OWNER, PROVIDER_EXTENSIONS)
            .await
            .unwrap();
        let report = match restore_as(repo, id, dst, TARGET_OWNER, db, import_options()).await {
            Ok(r) => r,
            Err(e) => {
                out.push(format!("[{label}] {db}: restore as {TARGET_OWNER} failed: {e}"));
                continue;
            }
        };
        let notes: Vec<&String> = report
            .warnings
            .iter()
            .filter(|w| w.contains("left as found"))
            .collect();
        if notes.len() != 1 || !notes[0].contains("pg_trgm") || !notes[0].contains("owned by postgres") {
            out.push(format!(
                "[{label}] {db}: expected one report line on the administrator's extensions, got {:?}",
                report.warnings
            ));
        }
        let compared = if src.major() == dst.major() {
            oracle::compare(src, db, dst, db).await.unwrap()
        } else {
            let reference = format!("{db}_reference");
            oracle::restore_reference(src, db, dst, &reference).await.unwrap();
            // pg_restore ran as a superuser and re-commented the extensions with the source's
            // (older) texts; on a managed target the administrator created them with the
            // target's own, and only it may change them. Model that in the reference.
            let client = dst.connect(&reference).await.unwrap();
            let sql: String = client
                .query(
                    "SELECT format('COMMENT ON EXTENSION %I IS %L;', x.extname, a.comment) \
                     FROM pg_extension x JOIN pg_available_extensions a ON a.name = x.extname",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            client.batch_execute(&sql).await.unwrap();
            oracle::compare(dst, &reference, dst, db).await.unwrap()
        };
        if !compared.is_identical() {
            out.push(format!("[{label}] {db} differs:"));
            out.extend(compared.differences());
        }
        if compared.tables_compared < 3 {
            out.push(format!(
                "[{label}] {db}: the fixtures were not loaded: {compared:?}"
            ));
        }
        let (owned, others) = not_owned_by(dst, db, TARGET_OWNER).await;
        if owned < 3 || !others.is_empty() {
            out.push(format!(
                "[{label}] {db}: {owned} relations owned by {TARGET_OWNER}, others: {others:?}"
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fixture_round_trips_between_managed_databases_16_to_16_and_12_to_16() {
    let (src16, src12, dst16, dst12to16) = tokio::join!(cluster(16), cluster(12), cluster(16), cluster(16));
    for src in [&src16, &src12] {
        for (_, db, fixtures) in databases(src.major()) {
            load_as_owner(src, db, &fixtures).await;
        }
    }
    let repo16 = backup_as_owner(&src16, &databases(16)).await;
    let repo12 = backup_as_owner(&src12, &databases(12)).await;
    let (a, b) = tokio::join!(
        restore_all_and_compare("16 -> 16", &repo16, &src16, &dst16),
        restore_all_and_compare("12 -> 16", &repo12, &src12, &dst12to16),
    );
    let differences: Vec<String> = a.into_iter().chain(b).collect();
    assert!(
        differences.is_empty(),
        "managed restores differ:\n{}",
        differences.join("\n")
    );
}

/// Relations of `db` outside extensions: a refused restore must leave none.
async fn relations_written(cluster: &PgCluster, db: &str) -> i64 {
    cluster
        .connect(db)
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                               AND d.objid = c.oid AND d.deptype = 'e')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_that_may_create_trusted_extensions_restores_without_an_administrator() {
    let (src, dst) = tokio::join!(cluster(16), cluster(16));
    load_as_owner(&src, "sg", &["frontend.sql", "adversarial.sql"]).await;
    let repo = backup_as_owner(&src, &[("pgsql", "sg", vec![])]).await;

    // No extension created beforehand: the owner creates the trusted ones itself, and
    // pg_stat_statements (not trusted) is skipped, as Sourcegraph itself does.
    dst.create_managed_database("sg", TARGET_OWNER, &[])
        .await
        .unwrap();
    let report = restore_as(&repo, "pgsql", &dst, TARGET_OWNER, "sg", import_options())
        .await
        .unwrap_or_else(|e| panic!("restore as an owner creating trusted extensions: {e}"));
    assert!(
        !report.warnings.iter().any(|w| w.contains("left as found")),
        "{:?}",
        report.warnings
    );
    let client = dst.connect("sg").await.unwrap();
    let owners: BTreeMap<String, String> = client
        .query(
            "SELECT extname::text, extowner::regrole::text FROM pg_extension",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for ext in ["citext", "hstore", "intarray", "pg_trgm", "pgcrypto"] {
        assert_eq!(
            owners.get(ext).map(String::as_str),
            Some(TARGET_OWNER),
            "{owners:?}"
        );
    }
    assert!(!owners.contains_key("pg_stat_statements"), "{owners:?}");

    let compared = oracle::compare(&src, "sg", &dst, "sg").await.unwrap();
    let unexpected: Vec<String> = compared
        .schema_diff
        .iter()
        .filter(|l| (l.starts_with('-') || l.starts_with('+')) && l.trim().len() > 1)
        .filter(|l| !l.contains("pg_stat_statements"))
        .cloned()
        .collect();
    assert!(
        unexpected.is_empty()
            && compared.table_differences.is_empty()
            && compared.sequence_differences.is_empty(),
        "only pg_stat_statements may differ: {unexpected:?}\n{}",
        compared.differences().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_the_owner_may_not_do_is_refused_before_any_write_by_name() {
    let (src, dst) = tokio::join!(cluster(16), cluster(16));
    load_as_owner(&src, "sg", &["frontend.sql"]).await;
    // A policy for a role that only the source has.
    src.create_login_role("sg_readers").await.unwrap();
    src.connect_as(SOURCE_OWNER, "sg")
        .await
        .unwrap()
        .batch_execute("CREATE POLICY readers_only ON public.repo FOR SELECT TO sg_readers USING (true)")
        .await
        .unwrap();
    let repo = backup_as_owner(&src, &[("pgsql", "sg", vec![])]).await;

    // 1. An extension is missing and the owner may not create it: the database belongs to the
    //    administrator, so the owner lacks CREATE on it (hstore is trusted, but not for it).
    dst.create_login_role(TARGET_OWNER).await.unwrap();
    dst.batch_execute("postgres", "CREATE DATABASE no_hstore")
        .await
        .unwrap();
    dst.batch_execute(
        "no_hstore",
        &format!(
            "CREATE EXTENSION citext; CREATE EXTENSION intarray; CREATE EXTENSION pg_trgm; \
             CREATE EXTENSION pgcrypto; GRANT ALL ON SCHEMA public TO {TARGET_OWNER};"
        ),
    )
    .await
    .unwrap();
    let err = restore_as(&repo, "pgsql", &dst, TARGET_OWNER, "no_hstore", import_options())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        err.kind(),
        sourcegraph_backup_core::StoreErrorKind::IncompatibleTarget,
        "{msg}"
    );
    assert!(matches!(err, PgError::IncompatibleTarget { .. }), "{msg}");
    assert!(
        msg.contains("extension hstore is not installed") && msg.contains(TARGET_OWNER),
        "{msg}"
    );
    assert!(
        msg.contains("role sg_readers does not exist") && msg.contains("--role-map"),
        "{msg}"
    );
    assert_eq!(
        relations_written(&dst, "no_hstore").await,
        0,
        "nothing is written"
    );

    // 2. Every extension there, but the policy's role is missing: refused, named.
    dst.create_managed_database("sg", TARGET_OWNER, PROVIDER_EXTENSIONS)
        .await
        .unwrap();
    let err = restore_as(&repo, "pgsql", &dst, TARGET_OWNER, "sg", import_options())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "role sg_readers does not exist on the target (needed by policy public.repo.readers_only)"
        ),
        "{err}"
    );
    assert!(!err.contains("hstore"), "{err}");
    assert_eq!(relations_written(&dst, "sg").await, 0, "nothing is written");

    // 3. Owners asked for, but the owner role exists and the restoring role is not a member.
    dst.create_login_role(SOURCE_OWNER).await.unwrap();
    let mut render = RenderOptions {
        include_owners: true,
        ..RenderOptions::default()
    };
    render.role_map.insert("sg_readers".into(), TARGET_OWNER.into());
    let owners = PgImportOptions {
        render: render.clone(),
        ..import_options()
    };
    let err = restore_as(&repo, "pgsql", &dst, TARGET_OWNER, "sg", owners)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "role {TARGET_OWNER} may not make {SOURCE_OWNER} the owner"
        )),
        "{err}"
    );
    assert_eq!(relations_written(&dst, "sg").await, 0, "nothing is written");

    // 4. The role map is the way out: the policy now names the target's owner.
    render.include_owners = false;
    let mapped = PgImportOptions {
        render,
        ..import_options()
    };
    restore_as(&repo, "pgsql", &dst, TARGET_OWNER, "sg", mapped)
        .await
        .unwrap_or_else(|e| panic!("restore with a role map: {e}"));
    let roles: Vec<String> = dst
        .connect("sg")
        .await
        .unwrap()
        .query(
            "SELECT unnest(roles)::text FROM pg_policies WHERE policyname = 'readers_only'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(roles, vec![TARGET_OWNER.to_string()]);
}
