//! The repository and the pipeline against Azurite (the Azure Blob Storage emulator, started by
//! the testkit on loopback). Repositories are opened with `BackupRepository::open("az://...")`,
//! configured from the environment as `object_store` reads it (`AZURE_STORAGE_USE_EMULATOR`,
//! `AZURITE_BLOB_STORAGE_URL`, set once for the binary by `AzuriteServer::shared`); every test
//! uses its own container.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use sourcegraph_backup_core::repository::PART_SIZE;
use sourcegraph_backup_core::{ArtifactOptions, BackupOption, BackupRepository, SourceInfo};
use sourcegraph_backup_testkit::azurite::AzuriteServer;
use support::{
    assert_all_restored, assert_nothing_under, backup_pipeline, bytes_artifact, noise_artifact, noise_sha256,
    plan_with_big_store, problem_paths, read_sha256, restore_pipeline, section, MIB,
};

async fn container(name: &str) {
    let az = AzuriteServer::shared().unwrap_or_else(|e| panic!("{e}"));
    az.create_container(name).await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_round_trip_verify_and_name_a_changed_artifact() {
    container("roundtrip").await;
    let repo = BackupRepository::open("az://roundtrip/backups").unwrap();
    let w = repo.start_backup(BackupOption::AllData);
    let big = noise_artifact(
        &w,
        "vol",
        "big.bin",
        ArtifactOptions::zstd("application/octet-stream"),
        11,
        12,
    )
    .await;
    bytes_artifact(
        &w,
        "vol",
        "small.txt",
        ArtifactOptions::plain("text/plain"),
        b"abcdef",
    )
    .await;
    // An abandoned backup next to it: listed as incomplete, never as complete. Its writer
    // goes away below and its (short) lease lapses, as a killed process's would.
    let abandoned = repo
        .clone()
        .with_lease_duration(std::time::Duration::from_millis(600))
        .start_backup(BackupOption::AllData);
    abandoned
        .artifact("vol", "x.txt", ArtifactOptions::plain("text/plain"))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    w.commit(vec![section("vol")], None, SourceInfo::default(), vec![])
        .await
        .unwrap();
    assert!(big.size > 2 * PART_SIZE as u64, "{big:?}");

    let repo = BackupRepository::open("az://roundtrip/backups").unwrap();
    let listed = repo.list().await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [w.id()]);
    assert_eq!(repo.list_incomplete().await.unwrap(), [abandoned.id()]);
    let reader = repo.open_latest().await.unwrap();
    let (len, sha256) = read_sha256(&reader, &big).await;
    assert_eq!(len, 12 * MIB);
    assert_eq!(sha256, noise_sha256(11, 12 * MIB));

    let report = repo.verify(w.id()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 2);
    repo.object_store()
        .put(
            &Path::from(format!("backups/{}/vol/small.txt", w.id())),
            PutPayload::from_static(b"abcdeF"),
        )
        .await
        .unwrap();
    let report = repo.verify(w.id()).await.unwrap();
    assert_eq!(problem_paths(&report), [("vol/small.txt", false)]);

    let abandoned_id = abandoned.id().to_string();
    assert!(
        repo.clean_incomplete().await.unwrap().is_empty(),
        "its lease lives"
    );
    drop(abandoned);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(repo.clean_incomplete().await.unwrap(), [abandoned_id.as_str()]);
    assert_nothing_under(&repo, &format!("backups/{abandoned_id}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_backs_up_and_restores_over_azure() {
    container("pipeline").await;
    let repo = BackupRepository::open("az://pipeline/sg").unwrap();
    let (plan, stores) = plan_with_big_store(16 * MIB);
    let outcome = backup_pipeline(repo, plan, &stores, 2).run().await.unwrap();
    let id = outcome.manifest.backup_id;

    let repo = BackupRepository::open("az://pipeline/sg").unwrap();
    assert!(repo.verify(&id).await.unwrap().is_ok());
    restore_pipeline(repo.open_latest().await.unwrap(), &stores)
        .run()
        .await
        .unwrap();
    assert_all_restored(&stores);
}
