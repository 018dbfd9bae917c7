//! The manifest details are versioned: a new backup records `format: 1`, a backup written
//! before the format was called `format` (it recorded `version: 1`, or nothing) still restores,
//! and a newer format is refused, naming the store, before anything is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sourcegraph_backup_config::files::SITE_FILE_NAME;
use sourcegraph_backup_config::{
    ConfigDetails, ConfigError, ConfigFilePaths, ConfigStore, FilesImportDetails, DETAILS_FORMAT,
};
use sourcegraph_backup_core::{
    BackupOption, BackupRepository, DataStore, ExportContext, Exporter, ImportContext, Importer,
    ProgressSink, StoreErrorKind, StoreSection,
};

/// A backup of a site configuration, global settings and one GitHub connection read from files,
/// with its details passed through `edit` before the commit.
async fn backup_with(edit: impl FnOnce(&mut serde_json::Value)) -> BackupRepository {
    let src = tempfile::tempdir().unwrap();
    let paths = ConfigFilePaths::in_dir(src.path());
    std::fs::write(&paths.site_config[0], site_text()).unwrap();
    std::fs::write(paths.global_settings.as_ref().unwrap(), settings_text()).unwrap();
    std::fs::write(
        paths.extsvc_config.as_ref().unwrap(),
        format!("{{\"GITHUB\": [\n{}\n]}}\n", github_text()),
    )
    .unwrap();
    let store = ConfigStore::files(paths);
    let repo = BackupRepository::in_memory();
    let w = repo.start_backup(BackupOption::ConfigOnly);
    let report = store
        .export(ExportContext::new("config", w.clone(), ProgressSink::disabled()))
        .await
        .unwrap();
    let mut details = report.details;
    edit(&mut details);
    let section = StoreSection {
        id: "config".into(),
        kind: store.kind(),
        catalog: store.catalog(),
        details,
        warnings: report.warnings,
    };
    w.commit(vec![section], None, Default::default(), vec![])
        .await
        .unwrap();
    repo
}

async fn import(repo: &BackupRepository, store: &ConfigStore) -> Result<serde_json::Value, ConfigError> {
    let reader = repo.open_latest().await.unwrap();
    let ctx = ImportContext::new("config", reader, ProgressSink::disabled()).unwrap();
    match store.import(ctx).await {
        Ok(report) => Ok(report.details),
        Err(e) => {
            assert_eq!(e.kind(), StoreErrorKind::CorruptBackup, "{e}");
            Err(*e.into_cause().downcast::<ConfigError>().unwrap())
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn new_backups_record_the_format() {
    let repo = backup_with(|_| {}).await;
    let manifest = repo.open_latest().await.unwrap().manifest().clone();
    let details = &manifest.store("config").unwrap().details;
    assert_eq!(details["format"], DETAILS_FORMAT, "{details}");
    assert!(details.get("version").is_none(), "{details}");
    let read = ConfigDetails::from_manifest("config", details).unwrap();
    assert_eq!(read.format, DETAILS_FORMAT);
    assert_eq!(read.documents.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn details_without_format_still_restore() {
    // As releases before `format` wrote them (`version: 1`), and with no version at all.
    type Edit = fn(&mut serde_json::Map<String, serde_json::Value>);
    let old: [(&str, Edit); 2] = [
        ("version: 1", |d| {
            let v = d.remove("format").unwrap();
            d.insert("version".into(), v);
        }),
        ("no format", |d| {
            d.remove("format").unwrap();
        }),
    ];
    for (label, edit) in old {
        let repo = backup_with(|d| edit(d.as_object_mut().unwrap())).await;
        let manifest = repo.open_latest().await.unwrap().manifest().clone();
        let details = &manifest.store("config").unwrap().details;
        assert!(details.get("format").is_none(), "{label}: {details}");
        assert_eq!(
            ConfigDetails::from_manifest("config", details).unwrap().format,
            1,
            "{label}"
        );

        let dst = tempfile::tempdir().unwrap();
        let out = ConfigFilePaths::in_dir(dst.path());
        let report = import(&repo, &ConfigStore::files(out.clone())).await.unwrap();
        let report: FilesImportDetails = serde_json::from_value(report).unwrap();
        assert_eq!(report.files.len(), 3, "{label}: {report:?}");
        assert_eq!(
            std::fs::read(&out.site_config[0]).unwrap(),
            site_text().as_bytes(),
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_format_is_refused_naming_the_store() {
    // A newer release may change everything else too.
    let repo = backup_with(|d| *d = serde_json::json!({"format": 99, "documents": {"site": 1}})).await;
    let dst = tempfile::tempdir().unwrap();
    let store = ConfigStore::files(ConfigFilePaths::in_dir(dst.path()));
    let err = import(&repo, &store).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("store config"), "{text}");
    assert!(
        text.contains("written by a newer release: upgrade sourcegraph-backup"),
        "{text}"
    );
    assert!(
        matches!(
            err,
            ConfigError::NewerFormat {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!dst.path().join(SITE_FILE_NAME).exists(), "nothing written");
    assert_eq!(std::fs::read_dir(dst.path()).unwrap().count(), 0);
}
