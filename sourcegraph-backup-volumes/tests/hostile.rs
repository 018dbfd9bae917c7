//! Hostile archives are refused entry by entry, and nothing is written
//! outside the restore root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use bytes::Bytes;
use sourcegraph_backup_core::{
    ArtifactOptions, BackupOption, BackupReader, BackupRepository, SourceInfo, StoreKind, StoreSection,
};
use sourcegraph_backup_volumes::{VolumeError, VolumeStore};
use tar::{EntryType, Header};

/// One raw entry: the name bytes go straight into the header, bypassing the
/// tar crate's own checks (which refuse `..`).
fn entry(out: &mut Vec<u8>, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    if kind == EntryType::Char {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name);
    old.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

async fn backup_of(tar: Vec<u8>) -> BackupReader {
    let mut tar = tar;
    tar.resize(tar.len() + 1024, 0);
    let repo = BackupRepository::in_memory();
    let w = repo.start_backup(BackupOption::AllData);
    let mut a = w
        .artifact(
            "hostile",
            "part-0000.tar.zst",
            ArtifactOptions::zstd("application/x-tar"),
        )
        .await
        .unwrap();
    a.write(Bytes::from(tar)).await.unwrap();
    a.finish().await.unwrap();
    let section = StoreSection {
        id: "hostile".into(),
        kind: StoreKind::Volume,
        catalog: vec![],
        details: serde_json::Value::Null,
        warnings: vec![],
    };
    w.commit(vec![section], None, SourceInfo::default(), vec![])
        .await
        .unwrap();
    repo.open_backup(w.id()).await.unwrap()
}

/// Restores into `<tmp>/root/target` and returns the error, which must name
/// `entry` and the artifact.
async fn refused(tar: Vec<u8>, tmp: &Path, entry_name: &str) -> VolumeError {
    let reader = backup_of(tar).await;
    let store = VolumeStore::new("hostile", tmp.join("root/target"));
    let err = common::restore(reader, &store).await.unwrap_err();
    let err = *err.downcast::<VolumeError>().unwrap();
    let text = err.to_string();
    assert!(text.contains(entry_name), "{text}");
    assert!(text.contains("hostile/part-0000.tar.zst"), "{text}");
    assert!(matches!(err, VolumeError::UnsafeEntry { .. }), "{err:?}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_dir_escape_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    entry(&mut tar, b"ok.txt", EntryType::Regular, b"", b"fine");
    entry(&mut tar, b"../escape", EntryType::Regular, b"", b"evil");
    entry(&mut tar, b"sub/../../escape2", EntryType::Regular, b"", b"evil");
    refused(tar, tmp.path(), "../escape").await;
    assert!(!tmp.path().join("root/escape").exists());
    assert!(
        tmp.path().join("root/target/ok.txt").exists(),
        "entries before it were restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("abs-target");
    let name = format!("{}/evil", outside.display());
    let mut tar = Vec::new();
    entry(&mut tar, name.as_bytes(), EntryType::Regular, b"", b"evil");
    refused(tar, tmp.path(), &name).await;
    assert!(!outside.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut tar = Vec::new();
    entry(
        &mut tar,
        b"x",
        EntryType::Symlink,
        outside.as_os_str().as_encoded_bytes(),
        b"",
    );
    entry(&mut tar, b"x/file", EntryType::Regular, b"", b"evil");
    refused(tar, tmp.path(), "x/file").await;
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    // The link itself was restored as a link (never followed).
    assert!(std::fs::symlink_metadata(tmp.path().join("root/target/x"))
        .unwrap()
        .file_type()
        .is_symlink());

    // The same through a deeper path and through /tmp.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    entry(&mut tar, b"d/", EntryType::Directory, b"", b"");
    entry(&mut tar, b"d/x", EntryType::Symlink, b"/tmp", b"");
    entry(&mut tar, b"d/x/sub/planted", EntryType::Regular, b"", b"evil");
    refused(tar, tmp2.path(), "d/x/sub/planted").await;
    assert!(!Path::new("/tmp/sub/planted").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_node_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    entry(&mut tar, b"null", EntryType::Char, b"", b"");
    let err = refused(tar, tmp.path(), "null").await;
    assert!(err.to_string().contains("device"), "{err}");
    assert!(std::fs::symlink_metadata(tmp.path().join("root/target/null")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_link_out_of_the_root_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("secret");
    std::fs::write(&outside, "secret").unwrap();
    let mut tar = Vec::new();
    entry(
        &mut tar,
        b"steal",
        EntryType::Link,
        outside.as_os_str().as_encoded_bytes(),
        b"",
    );
    refused(tar, tmp.path(), "steal").await;
    let mut tar = Vec::new();
    entry(&mut tar, b"steal2", EntryType::Link, b"../../secret", b"");
    refused(tar, tmp.path(), "steal2").await;
    // A link to a symlink that leads outside is refused too.
    let tmp3 = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    entry(
        &mut tar,
        b"l",
        EntryType::Symlink,
        outside.as_os_str().as_encoded_bytes(),
        b"",
    );
    entry(&mut tar, b"steal3", EntryType::Link, b"l", b"");
    refused(tar, tmp3.path(), "steal3").await;
    assert_eq!(std::fs::metadata(&outside).unwrap().len(), 6);
}
