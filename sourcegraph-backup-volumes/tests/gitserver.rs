//! A gitserver-like volume of bare repositories splits into several parts,
//! restores, and `git fsck --full` passes on every restored repository.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use sourcegraph_backup_core::model::CatalogId;
use sourcegraph_backup_core::{BackupRepository, DataStore};
use sourcegraph_backup_volumes::VolumeStore;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("git is required for this test (apt-get install git): {e}"));
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare repository with a packfile (after gc) and loose objects (later commits).
fn make_repo(volume: &Path, work: &Path, name: &str, seed: usize) -> PathBuf {
    let bare = volume.join(format!("github.com/acme/{name}.git"));
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--bare", "-q"]);
    let clone = work.join(name);
    git(work, &["clone", "-q", bare.to_str().unwrap(), name]);
    for round in 0..3 {
        for f in 0..5 {
            let body: String = (0..2000)
                .map(|i| format!("{name} {seed} {round} {f} {i}\n"))
                .collect();
            std::fs::write(clone.join(format!("file{f}.txt")), body).unwrap();
        }
        git(&clone, &["add", "-A"]);
        git(&clone, &["commit", "-q", "-m", &format!("round {round}")]);
        git(&clone, &["push", "-q", "origin", "HEAD:main"]);
        if round == 1 {
            git(&bare, &["gc", "-q"]);
        }
    }
    bare
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitserver_volume_splits_restores_and_fscks() {
    let tmp = tempfile::tempdir().unwrap();
    let (volume, work) = (tmp.path().join("gitserver-0"), tmp.path().join("work"));
    std::fs::create_dir_all(&work).unwrap();
    let repos: Vec<PathBuf> = (0..6)
        .map(|i| make_repo(&volume, &work, &format!("repo{i}"), i))
        .collect();
    assert!(
        repos[0].join("objects/pack").read_dir().unwrap().count() >= 2,
        "a packfile exists"
    );

    let repo = BackupRepository::local(tmp.path().join("backups")).unwrap();
    // Small parts: everything lives under github.com/, which must be split further.
    let store = VolumeStore::new("gitserver-0", &volume)
        .with_deployment(sourcegraph_backup_core::Deployment::DockerCompose)
        .part_size(256 << 10);
    assert_eq!(store.catalog(), vec![CatalogId::from("repository-git-data")]);
    let (reader, report) = common::backup(&repo, &store).await.unwrap();
    let parts = reader.manifest().stores[0].artifacts.len();
    assert!(
        parts >= 3,
        "expected several parts, got {parts}: {}",
        report.details
    );
    assert_eq!(report.details["parts"].as_array().unwrap().len(), parts);
    assert_eq!(report.details["deployment_volume"], "gitserver-0");

    let target = tmp.path().join("restored");
    let restore = VolumeStore::new("gitserver-0", &target).concurrency(3);
    common::restore(reader, &restore).await.unwrap();
    common::assert_trees_equal(&volume, &target, &[]);
    for bare in &repos {
        let restored = target.join(bare.strip_prefix(&volume).unwrap());
        git(&restored, &["fsck", "--full", "--strict"]);
        git(&restored, &["log", "--oneline", "-n", "3"]);
    }
}
