//! Backup repository: streamed artifacts, manifest last, verify, listing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use sha2::{Digest, Sha256};
use sourcegraph_backup_core::repository::PART_SIZE;
use sourcegraph_backup_core::{
    ArtifactOptions, BackupOption, BackupRepository, CoreError, StoreKind, StoreSection,
};

fn section(id: &str) -> StoreSection {
    StoreSection {
        id: id.into(),
        kind: StoreKind::Volume,
        catalog: vec![],
        details: serde_json::json!({"note": "test"}),
        warnings: vec![],
    }
}

/// Deterministic, poorly compressible bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn write_artifact(
    backup: &sourcegraph_backup_core::BackupWriter,
    store: &str,
    name: &str,
    opts: ArtifactOptions,
    data: &[u8],
) -> sourcegraph_backup_core::ArtifactRecord {
    let mut w = backup.artifact(store, name, opts).await.unwrap();
    for chunk in data.chunks(300_000) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    w.finish().await.unwrap()
}

async fn round_trip(repo: BackupRepository) {
    let backup = repo.start_backup(BackupOption::AllData);
    let small = b"hello, backup".to_vec();
    let big = pseudo_random(PART_SIZE * 2 + 12345, 7);
    let text: Vec<u8> = "COPY line\tvalue\n".repeat(200_000).into_bytes();
    let r1 = write_artifact(
        &backup,
        "s1",
        "small.txt",
        ArtifactOptions::plain("text/plain"),
        &small,
    )
    .await;
    let r2 = write_artifact(
        &backup,
        "s1",
        "dir/big.bin",
        ArtifactOptions::plain("application/octet-stream"),
        &big,
    )
    .await;
    let r3 = write_artifact(
        &backup,
        "s2",
        "text.copy",
        ArtifactOptions::zstd("text/plain"),
        &text,
    )
    .await;
    assert_eq!(r1.size, small.len() as u64);
    assert_eq!(r1.sha256, hex::encode(Sha256::digest(&small)));
    assert_eq!(r2.size, big.len() as u64, "multipart artifact size");
    assert_eq!(r2.sha256, hex::encode(Sha256::digest(&big)));
    assert!(
        r3.size < text.len() as u64 / 10,
        "zstd compresses repetitive text"
    );
    assert_eq!(r3.uncompressed_size, text.len() as u64);

    // Not visible before commit.
    assert!(repo.list().await.unwrap().is_empty());
    assert_eq!(
        repo.list_incomplete().await.unwrap(),
        vec![backup.id().to_string()]
    );
    backup
        .commit(
            vec![section("s1"), section("s2")],
            None,
            Default::default(),
            vec![],
        )
        .await
        .unwrap();

    let listed = repo.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, backup.id());
    assert_eq!(listed[0].stored_bytes, r1.size + r2.size + r3.size);

    let reader = repo.open_latest().await.unwrap();
    let m = reader.manifest();
    assert_eq!(m.store("s1").unwrap().artifacts.len(), 2);
    let back = reader.open_artifact(&r2).read_to_end().await.unwrap();
    assert_eq!(back.as_ref(), big.as_slice());
    let back = reader.open_artifact(&r3).read_to_end().await.unwrap();
    assert_eq!(
        back.as_ref(),
        text.as_slice(),
        "zstd artifact decodes to the original"
    );
    let report = repo.verify(backup.id()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_local() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(BackupRepository::local(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_in_memory() {
    round_trip(BackupRepository::in_memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_via_file_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("nested").display());
    round_trip(BackupRepository::open(&url).unwrap()).await;
    assert!(dir.path().join("nested").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_writer_leaves_an_incomplete_backup() {
    let dir = tempfile::tempdir().unwrap();
    let lease = std::time::Duration::from_millis(600);
    let repo = BackupRepository::local(dir.path())
        .unwrap()
        .with_lease_duration(lease);
    let backup = repo.start_backup(BackupOption::ConfigOnly);
    write_artifact(
        &backup,
        "config",
        "site.jsonc",
        ArtifactOptions::plain("application/jsonc"),
        b"{}",
    )
    .await;
    // An artifact started but never finished blocks the commit.
    let mut w = backup
        .artifact(
            "config",
            "half.jsonc",
            ArtifactOptions::plain("application/jsonc"),
        )
        .await
        .unwrap();
    w.write(Bytes::from_static(b"{\"a\":")).await.unwrap();
    drop(w);
    let err = backup
        .commit(vec![section("config")], None, Default::default(), vec![])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("config/half.jsonc"), "{err}");
    let id = backup.id().to_string();
    drop(backup);

    assert!(repo.list().await.unwrap().is_empty());
    assert_eq!(repo.list_incomplete().await.unwrap(), vec![id.clone()]);
    let err = repo.open_backup(&id).await.unwrap_err();
    assert!(matches!(err, CoreError::Incomplete { .. }), "{err}");
    assert!(matches!(
        repo.open_latest().await.unwrap_err(),
        CoreError::NoBackups { .. }
    ));
    // Its lease outlives the writer for a while: a crashed process cannot release it.
    assert!(repo.clean_incomplete().await.unwrap().is_empty());
    tokio::time::sleep(lease + std::time::Duration::from_millis(100)).await;
    assert_eq!(repo.clean_incomplete().await.unwrap(), vec![id.clone()]);
    assert!(repo.list_incomplete().await.unwrap().is_empty());
    assert!(!dir.path().join(&id).exists(), "partial files go too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_flipped_truncated_and_missing_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    let backup = repo.start_backup(BackupOption::AllData);
    let data = pseudo_random(100_000, 3);
    for name in ["flipped.bin", "truncated.bin", "missing.bin", "fine.bin"] {
        write_artifact(
            &backup,
            "vol",
            name,
            ArtifactOptions::zstd("application/octet-stream"),
            &data,
        )
        .await;
    }
    backup
        .commit(vec![section("vol")], None, Default::default(), vec![])
        .await
        .unwrap();
    let base = dir.path().join(backup.id()).join("vol");
    let mut bytes = std::fs::read(base.join("flipped.bin")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(base.join("flipped.bin"), &bytes).unwrap();
    let bytes = std::fs::read(base.join("truncated.bin")).unwrap();
    std::fs::write(base.join("truncated.bin"), &bytes[..bytes.len() - 100]).unwrap();
    std::fs::remove_file(base.join("missing.bin")).unwrap();

    let report = repo.verify(backup.id()).await.unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.checked, 4);
    let find = |n: &str| report.problems.iter().find(|p| p.path == format!("vol/{n}"));
    assert!(
        find("flipped.bin").unwrap().problem.contains("sha256"),
        "{report:?}"
    );
    assert!(
        find("truncated.bin").unwrap().problem.contains("truncated"),
        "{report:?}"
    );
    assert!(find("missing.bin").unwrap().missing, "{report:?}");
    assert!(find("fine.bin").is_none());

    // Reading a damaged artifact fails naming it, even through the decoder.
    let reader = repo.open_backup(backup.id()).await.unwrap();
    for name in ["flipped.bin", "truncated.bin", "missing.bin"] {
        let rec = reader
            .manifest()
            .store("vol")
            .unwrap()
            .artifact(name)
            .unwrap()
            .clone();
        let err = reader.open_artifact(&rec).read_to_end().await.unwrap_err();
        assert!(err.to_string().contains(&format!("vol/{name}")), "{name}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_and_malformed_manifests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    let backup = repo.start_backup(BackupOption::ConfigOnly);
    backup
        .commit(vec![section("config")], None, Default::default(), vec![])
        .await
        .unwrap();
    let path = dir.path().join(backup.id()).join("manifest.json");
    let original = std::fs::read_to_string(&path).unwrap();

    let future = original.replacen("\"format_version\": 1", "\"format_version\": 99", 1);
    assert_ne!(future, original);
    std::fs::write(&path, future).unwrap();
    let err = repo.open_backup(backup.id()).await.unwrap_err();
    assert!(
        matches!(err, CoreError::UnsupportedFormat { found: 99, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("99") && err.to_string().contains("upgrade"),
        "{err}"
    );

    std::fs::write(&path, &original[..original.len() / 2]).unwrap();
    let err = repo.open_backup(backup.id()).await.unwrap_err();
    assert!(matches!(err, CoreError::MalformedManifest { .. }), "{err}");
    assert!(err.to_string().contains(backup.id()), "{err}");
    // Unreadable backups are not listed as restorable.
    assert!(repo.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_names_are_checked() {
    let repo = BackupRepository::in_memory();
    let backup = repo.start_backup(BackupOption::ConfigOnly);
    for bad in ["../x", "a//b", "", "manifest.json"] {
        assert!(
            backup
                .artifact("s", bad, ArtifactOptions::plain("x"))
                .await
                .is_err(),
            "{bad:?}"
        );
    }
    let _w = backup
        .artifact("s", "ok", ArtifactOptions::plain("x"))
        .await
        .unwrap();
    assert!(
        backup
            .artifact("s", "ok", ArtifactOptions::plain("x"))
            .await
            .is_err(),
        "duplicate name"
    );
}

/// Peak memory stays flat while a 1 GiB artifact streams through. Run with
/// `cargo test -p sourcegraph-backup-core --release -- --ignored large_artifact`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes 1 GiB; run explicitly to check bounded memory"]
async fn large_artifact_memory_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    let backup = repo.start_backup(BackupOption::AllData);
    let block = Bytes::from(pseudo_random(1024 * 1024, 11));
    let before = peak_rss_kib();
    let mut w = backup
        .artifact(
            "vol",
            "big.bin",
            ArtifactOptions::zstd("application/octet-stream"),
        )
        .await
        .unwrap();
    for _ in 0..1024 {
        w.write(block.clone()).await.unwrap();
    }
    let rec = w.finish().await.unwrap();
    let after = peak_rss_kib();
    println!(
        "1 GiB artifact: stored {} bytes; peak RSS {before} KiB -> {after} KiB",
        rec.size
    );
    assert!(
        after - before < 100 * 1024,
        "peak RSS grew by {} KiB",
        after - before
    );
}

fn peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_started_in_the_same_second_list_in_start_order() {
    let repo = BackupRepository::in_memory();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let backup = repo.start_backup(BackupOption::ConfigOnly);
        backup
            .commit(vec![section("config")], None, Default::default(), vec![])
            .await
            .unwrap();
        ids.push(backup.id().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let listed: Vec<String> = repo.list().await.unwrap().into_iter().map(|s| s.id).collect();
    ids.reverse();
    assert_eq!(listed, ids, "newest first");
    assert_eq!(repo.open_latest().await.unwrap().id(), ids[0]);
}
