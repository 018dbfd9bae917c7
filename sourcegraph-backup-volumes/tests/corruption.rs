//! Damaged artifacts fail naming the artifact; a non-empty target is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sourcegraph_backup_core::BackupRepository;
use sourcegraph_backup_volumes::{VolumeError, VolumeStore};

fn tree(root: &Path) {
    for i in 0..20 {
        let dir = root.join(format!("repo-{i:02}"));
        fs::create_dir_all(&dir).unwrap();
        // Incompressible-ish content so the stored artifact is large enough to damage in the middle.
        let data: Vec<u8> = (0..200_000u32)
            .map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i as u8)
            .collect();
        fs::write(dir.join("pack"), data).unwrap();
    }
}

async fn setup(tmp: &Path) -> (BackupRepository, PathBuf, String) {
    let src = tmp.join("src");
    tree(&src);
    let repo_dir = tmp.join("repo");
    let repo = BackupRepository::local(&repo_dir).unwrap();
    let store = VolumeStore::new("gitserver-0", &src).part_size(1 << 20);
    let (reader, report) = common::backup(&repo, &store).await.unwrap();
    assert!(report.details["parts"].as_array().unwrap().len() >= 3);
    let artifact = repo_dir.join(reader.id()).join("gitserver-0/part-0001.tar.zst");
    assert!(artifact.is_file());
    (repo, artifact, reader.id().to_string())
}

async fn restore_error(repo: &BackupRepository, id: &str, target: &Path) -> String {
    let reader = repo.open_backup(id).await.unwrap();
    let err = common::restore(reader, &VolumeStore::new("gitserver-0", target))
        .await
        .unwrap_err();
    let err = err.downcast::<VolumeError>().unwrap();
    assert!(matches!(*err, VolumeError::Parts { .. }), "{err:?}");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_artifact_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, artifact, id) = setup(tmp.path()).await;
    let len = fs::metadata(&artifact).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&artifact)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let text = restore_error(&repo, &id, &tmp.path().join("t")).await;
    assert!(text.contains("gitserver-0/part-0001.tar.zst"), "{text}");
    assert!(!text.contains("part-0000"), "only the damaged part fails: {text}");
    // The other parts were restored.
    assert!(tmp.path().join("t/repo-00/pack").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, artifact, id) = setup(tmp.path()).await;
    let len = fs::metadata(&artifact).unwrap().len();
    let mut f = OpenOptions::new().read(true).write(true).open(&artifact).unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&[b[0] ^ 0x01]).unwrap();
    drop(f);
    let text = restore_error(&repo, &id, &tmp.path().join("t")).await;
    assert!(text.contains("gitserver-0/part-0001.tar.zst"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_empty_target_is_refused_unless_overwriting() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _, id) = setup(tmp.path()).await;
    let target = tmp.path().join("t");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("precious"), "keep").unwrap();
    let reader = repo.open_backup(&id).await.unwrap();
    let err = common::restore(reader, &VolumeStore::new("gitserver-0", &target))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<VolumeError>(),
            Some(VolumeError::TargetNotEmpty { .. })
        ),
        "{err}"
    );
    assert_eq!(fs::read_dir(&target).unwrap().count(), 1, "nothing written");

    let reader = repo.open_backup(&id).await.unwrap();
    common::restore(reader, &VolumeStore::new("gitserver-0", &target).overwrite(true))
        .await
        .unwrap();
    // Overwrite replaces what the archive holds and leaves other files alone (like `tar -x`).
    assert_eq!(fs::read(target.join("precious")).unwrap(), b"keep");
    for i in [0, 7, 19] {
        let rel = format!("repo-{i:02}/pack");
        common::assert_same_content(&tmp.path().join("src").join(&rel), &target.join(&rel));
    }
}
