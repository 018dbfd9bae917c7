//! The testkit's conformance suite on the Postgres store: round trip with progress through the
//! oracle, verify, a corrupt artifact refused as a corrupt backup naming it, a non-empty
//! target refused and left as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use sourcegraph_backup_core::{DataStore, Importer};
use sourcegraph_backup_pg::{PgConnectionConfig, PgStore};
use sourcegraph_backup_testkit::conformance::{run, Subject};
use sourcegraph_backup_testkit::oracle;

/// The database a store's (redacted) location names.
fn database_of(store: &dyn DataStore) -> String {
    let location = store.location();
    let path = location.rsplit('/').next().unwrap_or_default();
    path.split('?').next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_postgres_store_conforms() {
    let (src, dst) = common::two_clusters().await;
    common::load(&src, "sg", &["frontend.sql", "adversarial.sql"]).await;
    let (src, dst) = (Arc::new(src), Arc::new(dst));
    let source = PgStore::new("pgsql", PgConnectionConfig::from_url(&src.url("sg")).unwrap())
        .with_export_options(common::export_options());

    let mut made = 0;
    let targets = dst.clone();
    let (checked_src, checked_dst) = (src.clone(), dst.clone());
    let report = run(Subject {
        source: Arc::new(source),
        fresh_target: Box::new(move || {
            made += 1;
            let db = format!("target_{made}");
            let cluster = targets.clone();
            Box::pin(async move {
                cluster.create_database(&db).await.unwrap();
                let config = PgConnectionConfig::from_url(&cluster.url(&db)).unwrap();
                Arc::new(PgStore::new("pgsql", config).with_import_options(common::import_options()))
                    as Arc<dyn Importer>
            })
        }),
        check: Box::new(move |target| {
            let (src, dst) = (checked_src.clone(), checked_dst.clone());
            Box::pin(async move {
                let db = database_of(target.as_ref());
                let report = oracle::compare(&src, "sg", &dst, &db)
                    .await
                    .map_err(|e| e.to_string())?;
                if report.is_identical() && report.tables_compared >= 35 {
                    Ok(())
                } else {
                    Err(format!("{db}: {}", report.differences().join("\n")))
                }
            })
        }),
    })
    .await;
    report.assert_conforms();
}
