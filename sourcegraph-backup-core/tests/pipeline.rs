//! The pipeline commits only when every store succeeded, and restores in phase order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use sourcegraph_backup_core::pipeline::{BackupPipeline, RestorePipeline};
use sourcegraph_backup_core::{
    plan, ArtifactOptions, BackupOption, BackupRepository, CoreError, DataStore, Deployment, ExportContext,
    ExportReport, Exporter, ImportContext, ImportReport, Importer, PlanRequest, ProgressEvent, ProgressSink,
    StoreError, StoreErrorKind, StoreKind,
};

/// A store that writes (or reads back) a few artifacts of known content.
#[derive(Debug)]
struct TextStore {
    id: String,
    kind: StoreKind,
    fail_after_artifact: bool,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl DataStore for TextStore {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> StoreKind {
        self.kind
    }
    fn location(&self) -> String {
        format!("test store {}", self.id)
    }
    async fn check_reachable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl Exporter for TextStore {
    async fn export(&self, ctx: ExportContext) -> Result<ExportReport, StoreError> {
        let body = Bytes::from(format!("content of {}\n", self.id).repeat(1000));
        ctx.put_artifact("data.txt", ArtifactOptions::zstd("text/plain"), body)
            .await?;
        if self.fail_after_artifact {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!("disk of {} vanished", self.id),
            ));
        }
        let mut report = ExportReport::default();
        report.source.sourcegraph_version = Some("5.9.0".into());
        Ok(report)
    }
}

#[async_trait]
impl Importer for TextStore {
    async fn import(&self, ctx: ImportContext) -> Result<ImportReport, StoreError> {
        let text = ctx.read_small("data.txt").await?;
        assert!(text.starts_with(format!("content of {}", self.id).as_bytes()));
        self.log.lock().unwrap().push(self.id.to_string());
        Ok(ImportReport {
            bytes: text.len() as u64,
            ..Default::default()
        })
    }
}

fn store(id: &str, kind: StoreKind, fail: bool, log: &Arc<Mutex<Vec<String>>>) -> Arc<TextStore> {
    Arc::new(TextStore {
        id: id.into(),
        kind,
        fail_after_artifact: fail,
        log: log.clone(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_in_phase_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let repo = BackupRepository::in_memory();
    let mut req = PlanRequest::new(BackupOption::AllData, Deployment::DockerCompose);
    req.skip_recreatable = true;
    req.external = ["codeinsights-db".to_string()].into();
    let p = plan(&req);
    let included: Vec<(String, StoreKind)> = p.included_stores().map(|s| (s.id.clone(), s.kind)).collect();
    assert!(
        included.contains(&("prometheus-v2".into(), StoreKind::Volume)),
        "{included:?}"
    );
    let stores: Vec<Arc<TextStore>> = included
        .iter()
        .map(|(id, kind)| store(id, *kind, false, &log))
        .collect();

    let (sink, mut events) = ProgressSink::channel();
    let mut pipeline = BackupPipeline::new(repo.clone(), p).progress(sink).concurrency(2);
    for s in &stores {
        pipeline = pipeline.exporter(s.clone());
    }
    let outcome = pipeline.run().await.unwrap();
    assert_eq!(outcome.manifest.stores.len(), included.len());
    assert_eq!(
        outcome.manifest.source.sourcegraph_version.as_deref(),
        Some("5.9.0")
    );
    assert!(outcome
        .stores
        .iter()
        .all(|s| s.stored_bytes > 0 && s.raw_bytes > s.stored_bytes));
    let mut finished = 0;
    while let Ok(e) = events.try_recv() {
        if let ProgressEvent::StoreFinished { error, .. } = e {
            assert!(error.is_none());
            finished += 1;
        }
    }
    assert_eq!(finished, included.len());
    assert_eq!(repo.list().await.unwrap().len(), 1);

    let reader = repo.open_latest().await.unwrap();
    let mut restore = RestorePipeline::new(reader);
    for s in stores.iter().rev() {
        restore = restore.importer(s.clone());
    }
    let outcome = restore.run().await.unwrap();
    assert!(outcome.not_restored.is_empty());
    let order = log.lock().unwrap().clone();
    let pos = |id: &str| order.iter().position(|x| x == id).unwrap();
    assert!(
        pos("pgsql") < pos("config"),
        "databases before configuration: {order:?}"
    );
    assert!(pos("codeintel-db") < pos("config"));
    assert!(
        pos("config") < pos("prometheus-v2"),
        "configuration before volumes: {order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_leaves_no_manifest_and_is_named() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let repo = BackupRepository::in_memory();
    let p = plan(&PlanRequest::new(
        BackupOption::AllPostgres,
        Deployment::Kubernetes,
    ));
    let err = BackupPipeline::new(repo.clone(), p)
        .exporter(store("config", StoreKind::Config, false, &log))
        .exporter(store("pgsql", StoreKind::Postgres, false, &log))
        .exporter(store("codeintel-db", StoreKind::Postgres, true, &log))
        .exporter(store("codeinsights-db", StoreKind::Postgres, false, &log))
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Store { store, phase: "export", .. } if store == "codeintel-db"),
        "{err}"
    );
    assert_eq!(err.store_error_kind(), Some(StoreErrorKind::Other));
    assert!(repo.list().await.unwrap().is_empty());
    assert!(
        repo.list_all().await.unwrap().is_empty(),
        "a failed backup removes what it wrote"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_store_without_exporter_is_an_error() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let repo = BackupRepository::in_memory();
    let p = plan(&PlanRequest::new(
        BackupOption::AllPostgres,
        Deployment::Kubernetes,
    ));
    let err = BackupPipeline::new(repo.clone(), p)
        .exporter(store("config", StoreKind::Config, false, &log))
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pgsql"), "{err}");
    assert!(repo.list_all().await.unwrap().is_empty(), "nothing written");
}

/// An importer that always fails.
#[derive(Debug)]
struct FailingImport(&'static str, StoreKind);

#[async_trait]
impl DataStore for FailingImport {
    fn id(&self) -> &str {
        self.0
    }
    fn kind(&self) -> StoreKind {
        self.1
    }
    fn location(&self) -> String {
        format!("failing store {}", self.0)
    }
    async fn check_reachable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl Importer for FailingImport {
    async fn import(&self, _ctx: ImportContext) -> Result<ImportReport, StoreError> {
        Err(StoreError::new(
            StoreErrorKind::Other,
            format!("{} does not parse", self.0),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restore_reports_what_was_restored_before_it() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let repo = BackupRepository::in_memory();
    let p = plan(&PlanRequest::new(
        BackupOption::AllData,
        Deployment::DockerCompose,
    ));
    let included: Vec<(String, StoreKind)> = p.included_stores().map(|s| (s.id.clone(), s.kind)).collect();
    let mut pipeline = BackupPipeline::new(repo.clone(), p);
    for (id, kind) in &included {
        pipeline = pipeline.exporter(store(id, *kind, false, &log));
    }
    pipeline.run().await.unwrap();

    let mut restore = RestorePipeline::new(repo.open_latest().await.unwrap())
        .importer(store("pgsql", StoreKind::Postgres, false, &log))
        .importer(store("codeintel-db", StoreKind::Postgres, false, &log))
        .importer(Arc::new(FailingImport("config", StoreKind::Config)));
    restore = restore.importer(store("prometheus-v2", StoreKind::Volume, false, &log));
    let partial = restore.run_reporting().await.unwrap_err();
    let restored: Vec<&str> = partial
        .outcome
        .stores
        .iter()
        .map(|(s, _, _)| s.as_str())
        .collect();
    assert_eq!(restored, ["codeintel-db", "pgsql"]);
    assert_eq!(partial.failed.len(), 1);
    assert!(
        matches!(&partial.failed[0].1, CoreError::Store { store, phase: "import", .. } if store == "config"),
        "{:?}",
        partial.failed
    );
    assert_eq!(partial.not_started, ["prometheus-v2"]);
    assert!(partial
        .outcome
        .not_restored
        .contains(&"codeinsights-db".to_string()));
    assert!(!log.lock().unwrap().contains(&"prometheus-v2".to_string()));
    let err = partial.into_error();
    assert!(err.to_string().contains("config"), "{err}");
}
