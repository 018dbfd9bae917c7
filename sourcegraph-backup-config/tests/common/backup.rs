//! Running a store through an in-memory backup repository.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use sourcegraph_backup_config::ConfigStore;
use sourcegraph_backup_core::{
    BackupManifest, BackupOption, BackupRepository, ExportContext, ExportReport, Exporter, ImportContext,
    ImportReport, Importer, ProgressEvent, ProgressSink, StoreKind, StoreSection,
};

/// Exports `store` into a fresh in-memory repository and commits; returns the repository, the
/// report, the manifest and every progress event.
pub async fn export(
    store: &ConfigStore,
) -> Result<(BackupRepository, ExportReport, BackupManifest, Vec<ProgressEvent>), String> {
    let repo = BackupRepository::in_memory();
    let w = repo.start_backup(BackupOption::ConfigOnly);
    let (sink, mut rx) = ProgressSink::channel();
    let ctx = ExportContext::new("config", w.clone(), sink);
    let report = store.export(ctx).await.map_err(|e| e.to_string())?;
    let section = StoreSection {
        id: "config".into(),
        kind: StoreKind::Config,
        catalog: vec![],
        details: report.details.clone(),
        warnings: report.warnings.clone(),
    };
    let manifest = w
        .commit(vec![section], None, Default::default(), vec![])
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Ok((repo, report, manifest, events))
}

/// Imports the latest backup of `repo` with `store`.
pub async fn import(repo: &BackupRepository, store: &ConfigStore) -> Result<ImportReport, String> {
    let reader = repo.open_latest().await.unwrap();
    let ctx = ImportContext::new("config", reader, ProgressSink::disabled()).unwrap();
    store.import(ctx).await.map_err(|e| e.to_string())
}
