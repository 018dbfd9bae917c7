//! The repository and the pipeline against a real S3-compatible server (moto, started by the
//! testkit on loopback). Repositories are opened with `BackupRepository::open("s3://...")`, with
//! credentials and endpoint from the environment as `object_store` reads them (`AWS_*`, set once
//! for the whole binary by `S3Server::shared`); every test uses its own bucket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use sourcegraph_backup_core::repository::{BackupState, PART_SIZE};
use sourcegraph_backup_core::{
    ArtifactOptions, BackupOption, BackupRepository, CoreError, SourceInfo, StoreKind, StoreSection,
};
use sourcegraph_backup_testkit::s3::{env_for, CuttingProxy, S3Server};
use support::{
    assert_all_restored, assert_nothing_under, backup_pipeline, bucket, bytes_artifact, error_chain,
    noise_artifact, noise_sha256, plan_with_big_store, problem_paths, read_sha256, restore_pipeline, section,
    write_noise, NoiseStore, MIB,
};

/// A repository whose store goes to `endpoint` (configured explicitly, not from the process
/// environment) and gives up quickly when the server is gone instead of retrying for minutes.
fn repo_at(endpoint: &str, bucket: &str, prefix: &str) -> BackupRepository {
    let mut builder = object_store::aws::AmazonS3Builder::new();
    for (key, value) in env_for(endpoint) {
        let key: object_store::aws::AmazonS3ConfigKey = key.to_ascii_lowercase().parse().unwrap();
        builder = builder.with_config(key, value);
    }
    let store = builder
        .with_url(format!("s3://{bucket}"))
        .with_retry(object_store::RetryConfig {
            backoff: object_store::BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(5),
        })
        .build()
        .unwrap();
    BackupRepository::from_store(
        Arc::new(store),
        Path::from(prefix),
        format!("s3://{bucket}/{prefix}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_above_the_part_size_round_trip_byte_exact() {
    bucket("multipart").await;
    let repo = BackupRepository::open("s3://multipart/backups/site").unwrap();
    let w = repo.start_backup(BackupOption::AllData);

    // 13 MiB of noise, zstd: three parts. 6 MiB stored plain: two parts. And a tiny one.
    let big = noise_artifact(
        &w,
        "blob",
        "data/big.bin",
        ArtifactOptions::zstd("application/octet-stream"),
        7,
        13,
    )
    .await;
    let plain = noise_artifact(
        &w,
        "blob",
        "plain.bin",
        ArtifactOptions::plain("application/octet-stream"),
        8,
        6,
    )
    .await;
    bytes_artifact(
        &w,
        "blob",
        "tiny.txt",
        ArtifactOptions::zstd("text/plain"),
        b"hello s3",
    )
    .await;
    w.commit(vec![section("blob")], None, SourceInfo::default(), vec![])
        .await
        .unwrap();

    assert!(big.size > 2 * PART_SIZE as u64, "{big:?}");
    assert_eq!(big.uncompressed_size, 13 * MIB as u64);
    assert_eq!(plain.size, 6 * MIB as u64);
    // S3 marks objects assembled from parts with an ETag ending in -<parts>.
    for (name, parts) in [("data/big.bin", "-3\""), ("plain.bin", "-2\"")] {
        let object = Path::from(format!("backups/site/{}/blob/{name}", w.id()));
        let meta = repo.object_store().head(&object).await.unwrap();
        let etag = meta.e_tag.unwrap_or_default();
        assert!(etag.ends_with(parts), "{name}: etag {etag}");
    }

    // Read back through a freshly opened repository, as another process would.
    let repo = BackupRepository::open("s3://multipart/backups/site").unwrap();
    let listed = repo.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, w.id());
    let reader = repo.open_latest().await.unwrap();
    let records = &reader.manifest().stores[0].artifacts;
    assert_eq!(records.len(), 3);
    for (record, seed, mib) in [(&big, 7, 13), (&plain, 8, 6)] {
        let (len, sha256) = read_sha256(&reader, record).await;
        assert_eq!(len, mib * MIB, "{}", record.path);
        assert_eq!(sha256, noise_sha256(seed, mib * MIB), "{}", record.path);
    }
    let tiny = reader.manifest().stores[0].artifact("tiny.txt").unwrap().clone();
    assert_eq!(
        &reader.open_artifact(&tiny).read_to_end().await.unwrap()[..],
        b"hello s3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_over_s3_names_the_changed_and_the_missing_artifact() {
    bucket("verify").await;
    let repo = BackupRepository::open("s3://verify/b").unwrap();
    let w = repo.start_backup(BackupOption::AllData);
    noise_artifact(
        &w,
        "vol",
        "big.bin",
        ArtifactOptions::zstd("application/octet-stream"),
        1,
        7,
    )
    .await;
    bytes_artifact(
        &w,
        "vol",
        "small.txt",
        ArtifactOptions::plain("text/plain"),
        b"0123456789",
    )
    .await;
    let manifest = w
        .commit(vec![section("vol")], None, SourceInfo::default(), vec![])
        .await
        .unwrap();

    let report = repo.verify(w.id()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 2);
    assert_eq!(report.bytes, manifest.stored_bytes());

    // Same length, different bytes: only the SHA-256 can tell.
    let store = repo.object_store();
    let small_path = Path::from(format!("b/{}/vol/small.txt", w.id()));
    store
        .put(&small_path, PutPayload::from_static(b"0123456780"))
        .await
        .unwrap();
    let report = repo.verify(w.id()).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].path, "vol/small.txt");
    assert!(!report.problems[0].missing);
    assert!(report.problems[0].problem.contains("sha256") || report.problems[0].problem.contains("SHA"));

    store
        .delete(&Path::from(format!("b/{}/vol/big.bin", w.id())))
        .await
        .unwrap();
    let report = repo.verify(w.id()).await.unwrap();
    assert_eq!(
        problem_paths(&report),
        [("vol/big.bin", true), ("vol/small.txt", false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_complete_backups_only_and_incomplete_ones_can_be_cleaned() {
    bucket("listing").await;
    let repo = BackupRepository::open("s3://listing/nested/prefix").unwrap();
    let done = repo.start_backup(BackupOption::ConfigOnly);
    done.artifact("config", "site.json", ArtifactOptions::zstd("application/json"))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    done.commit(
        vec![StoreSection {
            kind: StoreKind::Config,
            ..section("config")
        }],
        None,
        SourceInfo::default(),
        vec![],
    )
    .await
    .unwrap();

    // Never committed: one artifact finished, one abandoned mid-multipart. Its writer goes
    // away below and its (short) lease lapses, as a killed process's would.
    let abandoned = repo
        .clone()
        .with_lease_duration(std::time::Duration::from_millis(600))
        .start_backup(BackupOption::AllData);
    bytes_artifact(
        &abandoned,
        "vol",
        "a.txt",
        ArtifactOptions::plain("text/plain"),
        b"partial",
    )
    .await;
    let mut b = abandoned
        .artifact("vol", "b.bin", ArtifactOptions::plain("application/octet-stream"))
        .await
        .unwrap();
    write_noise(&mut b, 3, 6).await;
    drop(b);
    assert!(matches!(
        abandoned
            .commit(vec![section("vol")], None, SourceInfo::default(), vec![])
            .await,
        Err(CoreError::Abandoned { .. })
    ));

    let listed = repo.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [done.id()]
    );
    assert_eq!(listed[0].option, BackupOption::ConfigOnly);
    assert_eq!(repo.list_incomplete().await.unwrap(), [abandoned.id()]);
    let states = repo.list_all().await.unwrap();
    let state = states
        .iter()
        .find(|s| matches!(s, BackupState::Incomplete { id, .. } if id == abandoned.id()));
    assert!(
        matches!(state, Some(BackupState::Incomplete { last_modified: Some(_), lease: Some(l), .. })
            if l.backup_id == abandoned.id() && l.pid == std::process::id()),
        "{states:?}"
    );
    assert!(matches!(
        repo.open_backup(abandoned.id()).await,
        Err(CoreError::Incomplete { .. })
    ));

    let abandoned_id = abandoned.id().to_string();
    assert!(
        repo.clean_incomplete().await.unwrap().is_empty(),
        "a running backup is kept"
    );
    drop(abandoned);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(repo.clean_incomplete().await.unwrap(), [abandoned_id.as_str()]);
    assert_nothing_under(&repo, &format!("nested/prefix/{abandoned_id}")).await;
    assert!(repo.list_incomplete().await.unwrap().is_empty());
    assert!(repo.verify(done.id()).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_backs_up_and_restores_over_s3() {
    bucket("pipeline").await;
    let repo = BackupRepository::open("s3://pipeline/sg").unwrap();
    let (plan, stores) = plan_with_big_store(20 * MIB);
    let outcome = backup_pipeline(repo.clone(), plan, &stores, 2)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.manifest.stores.len(), stores.len());
    let big = outcome.stores.iter().find(|s| s.store == stores[0].id).unwrap();
    assert_eq!(big.raw_bytes, 20 * MIB as u64 + NoiseStore::META.len() as u64);
    assert!(
        big.stored_bytes > 20 * MIB as u64,
        "noise does not compress: {big:?}"
    );

    let repo = BackupRepository::open("s3://pipeline/sg").unwrap();
    let id = outcome.manifest.backup_id.clone();
    assert_eq!(repo.list().await.unwrap()[0].id, id);
    assert!(repo.verify(&id).await.unwrap().is_ok());
    let restored = restore_pipeline(repo.open_backup(&id).await.unwrap(), &stores)
        .run()
        .await
        .unwrap();
    assert_eq!(restored.stores.len(), stores.len());
    assert_all_restored(&stores);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dying_mid_upload_fails_the_backup_and_leaves_an_incomplete_prefix() {
    let s3 = bucket("cut").await;
    // The connection to the server dies after 8 MiB went up: inside the big store's artifact.
    let proxy = CuttingProxy::start(s3.addr(), 8 * MIB as u64).await.unwrap();
    // A short lease: the writer's process is modelled as gone once the backup failed.
    let lease = Duration::from_millis(600);
    let through_proxy = repo_at(&proxy.endpoint(), "cut", "sg").with_lease_duration(lease);
    let (plan, stores) = plan_with_big_store(24 * MIB);
    // One store at a time and the big one last, so the cut hits it and nothing else.
    let order = stores.iter().skip(1).chain(stores.iter().take(1));
    let err = backup_pipeline(through_proxy, plan, order, 1)
        .run()
        .await
        .unwrap_err();
    assert!(proxy.is_cut());
    let big = &stores[0].id;
    assert!(
        matches!(&err, CoreError::Store { store, phase: "export", .. } if store == big),
        "{err:?}"
    );
    let chain = error_chain(&err);
    assert!(chain.contains(&format!("/{big}/data.bin")), "{chain}");

    // The server kept what it received: the backup is there, incomplete, and can be cleaned.
    let repo = BackupRepository::open("s3://cut/sg").unwrap();
    assert!(repo.list().await.unwrap().is_empty());
    let incomplete = repo.list_incomplete().await.unwrap();
    assert_eq!(incomplete.len(), 1);
    assert!(matches!(
        repo.open_latest().await,
        Err(CoreError::NoBackups { .. })
    ));
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert_eq!(repo.clean_incomplete().await.unwrap(), incomplete);
    assert_nothing_under(&repo, "sg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_fails_the_artifact_by_name_and_nothing_commits() {
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("dies").await.unwrap();
    let repo = repo_at(&s3.endpoint(), "dies", "sg");
    let w = repo.start_backup(BackupOption::AllData);
    let mut a = w
        .artifact(
            "vol",
            "big.bin",
            ArtifactOptions::plain("application/octet-stream"),
        )
        .await
        .unwrap();
    let mut noise = write_noise(&mut a, 5, 6).await;
    s3.kill();
    let mut result = Ok(());
    for _ in 0..64 {
        result = a.write(noise.chunk(MIB)).await;
        if result.is_err() {
            break;
        }
    }
    let err = match result {
        Err(e) => e,
        Ok(()) => a.finish().await.unwrap_err(),
    };
    let chain = error_chain(&err);
    assert!(chain.contains(&format!("sg/{}/vol/big.bin", w.id())), "{chain}");
    assert!(matches!(
        w.commit(vec![section("vol")], None, SourceInfo::default(), vec![])
            .await,
        Err(CoreError::Abandoned { .. })
    ));
}
