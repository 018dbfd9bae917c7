//! The manifest details are versioned: a new backup records `format: 1`, a backup written
//! before the format was recorded still restores, and a newer format is refused, naming the
//! volume, before the target is touched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use sourcegraph_backup_core::{
    BackupOption, BackupReader, BackupRepository, DataStore, ExportContext, Exporter, ImportContext,
    Importer, ProgressSink, SourceInfo, StoreErrorKind, StoreSection,
};
use sourcegraph_backup_volumes::{VolumeDetails, VolumeError, VolumeStore, DETAILS_FORMAT};

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("github.com/acme/app.git/refs")).unwrap();
    std::fs::write(
        root.join("github.com/acme/app.git/HEAD"),
        "ref: refs/heads/main\n",
    )
    .unwrap();
    std::fs::write(root.join("top.txt"), "top").unwrap();
}

/// Backs `store` up with its details passed through `edit` before the commit.
async fn backup_with(
    repo: &BackupRepository,
    store: &VolumeStore,
    edit: impl FnOnce(&mut serde_json::Value),
) -> BackupReader {
    let w = repo.start_backup(BackupOption::AllData);
    let report = store
        .export(ExportContext::new(
            store.id(),
            w.clone(),
            ProgressSink::disabled(),
        ))
        .await
        .unwrap();
    let mut details = report.details;
    edit(&mut details);
    let section = StoreSection {
        id: store.id().into(),
        kind: store.kind(),
        catalog: store.catalog(),
        details,
        warnings: report.warnings,
    };
    w.commit(vec![section], None, SourceInfo::default(), vec![])
        .await
        .unwrap();
    repo.open_backup(w.id()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_backups_record_the_format() {
    let tmp = tempfile::tempdir().unwrap();
    tree(&tmp.path().join("src"));
    let repo = BackupRepository::in_memory();
    let store = VolumeStore::new("gitserver-0", tmp.path().join("src"));
    let (reader, report) = common::backup(&repo, &store).await.unwrap();
    assert_eq!(report.details["format"], DETAILS_FORMAT);
    let section = reader.manifest().store("gitserver-0").unwrap();
    let details = VolumeDetails::from_manifest("gitserver-0", &section.details).unwrap();
    assert_eq!(details.format, DETAILS_FORMAT);
    assert_eq!(details.files, 2);
    assert_eq!(details.volume, "gitserver-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_without_format_still_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let repo = BackupRepository::in_memory();
    let store = VolumeStore::new("gitserver-0", &src);
    // The details as releases before the format wrote them: the same fields, no `format`.
    let reader = backup_with(&repo, &store, |d| {
        d.as_object_mut().unwrap().remove("format").unwrap();
    })
    .await;
    let section = reader.manifest().store("gitserver-0").unwrap();
    assert!(section.details.get("format").is_none(), "{}", section.details);
    assert_eq!(
        VolumeDetails::from_manifest("gitserver-0", &section.details)
            .unwrap()
            .format,
        1
    );

    let target = tmp.path().join("restored");
    let imported = common::restore(reader, &VolumeStore::new("gitserver-0", &target))
        .await
        .unwrap();
    assert_eq!(imported.details["files"], 2, "{}", imported.details);
    common::assert_trees_equal(&src, &target, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_format_is_refused_naming_the_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let repo = BackupRepository::in_memory();
    let store = VolumeStore::new("gitserver-3", &src);
    // A newer release may change everything else too.
    let reader = backup_with(&repo, &store, |d| {
        *d = serde_json::json!({"format": 99, "files": "many", "chunks": 12});
    })
    .await;

    let target = tmp.path().join("restored");
    let importer = VolumeStore::new("gitserver-3", &target);
    let ctx = ImportContext::new("gitserver-3", reader, ProgressSink::disabled()).unwrap();
    let err = importer.import(ctx).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("gitserver-3"), "{text}");
    assert!(
        text.contains("written by a newer release: upgrade sourcegraph-backup"),
        "{text}"
    );
    assert_eq!(err.kind(), StoreErrorKind::CorruptBackup);
    let cause = err.into_cause().downcast::<VolumeError>().unwrap();
    assert!(
        matches!(
            *cause,
            VolumeError::NewerFormat {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{cause:?}"
    );
    // Refused before the target was touched.
    assert!(!target.exists());
}
