//! The repository and the pipeline against Azurite (the Azure Blob Storage emulator, started by
//! the testkit on loopback). Repositories are opened with `BackupRepository::open("az://...")`,
//! configured from the environment as `object_store` reads it (`AZURE_STORAGE_USE_EMULATOR`,
//! `AZURITE_BLOB_STORAGE_URL`, set once for the binary by `AzuriteServer::shared`); every test
//! uses its own container.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sourcegraph_backup_core::pipeline::{BackupPipeline, RestorePipeline};
use sourcegraph_backup_core::repository::PART_SIZE;
use sourcegraph_backup_core::{
    ArtifactOptions, BackupOption, BackupRepository, SourceInfo, StoreKind, StoreSection,
};
use sourcegraph_backup_testkit::azurite::AzuriteServer;
use support::{noise_sha256, plan_with_big_store, Noise, MIB};

async fn container(name: &str) {
    let az = AzuriteServer::shared().unwrap_or_else(|e| panic!("{e}"));
    az.create_container(name).await.unwrap_or_else(|e| panic!("{e}"));
}

fn section(id: &str) -> StoreSection {
    StoreSection {
        id: id.into(),
        kind: StoreKind::Volume,
        catalog: vec![],
        details: serde_json::json!({}),
        warnings: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_round_trip_verify_and_name_a_changed_artifact() {
    container("roundtrip").await;
    let repo = BackupRepository::open("az://roundtrip/backups").unwrap();
    let w = repo.start_backup(BackupOption::AllData);
    let mut big = w
        .artifact(
            "vol",
            "big.bin",
            ArtifactOptions::zstd("application/octet-stream"),
        )
        .await
        .unwrap();
    let mut noise = Noise::new(11);
    for _ in 0..12 {
        big.write(noise.chunk(MIB)).await.unwrap();
    }
    let big = big.finish().await.unwrap();
    let mut small = w
        .artifact("vol", "small.txt", ArtifactOptions::plain("text/plain"))
        .await
        .unwrap();
    small.write(Bytes::from_static(b"abcdef")).await.unwrap();
    small.finish().await.unwrap();
    // An abandoned backup next to it: listed as incomplete, never as complete.
    let abandoned = repo.start_backup(BackupOption::AllData);
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
    let mut rx = reader.open_artifact(&big).into_chunks();
    let mut hasher = sha2::Sha256::default();
    let mut len = 0usize;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.unwrap();
        len += chunk.len();
        sha2::Digest::update(&mut hasher, &chunk);
    }
    assert_eq!(len, 12 * MIB);
    assert_eq!(
        hex::encode(sha2::Digest::finalize(hasher)),
        noise_sha256(11, 12 * MIB)
    );

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
    let named: Vec<(&str, bool)> = report
        .problems
        .iter()
        .map(|p| (p.path.as_str(), p.missing))
        .collect();
    assert_eq!(named, [("vol/small.txt", false)]);

    assert_eq!(repo.clean_incomplete().await.unwrap(), [abandoned.id()]);
    let left: Vec<_> = repo
        .object_store()
        .list(Some(&Path::from(format!("backups/{}", abandoned.id()))))
        .try_collect()
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_backs_up_and_restores_over_azure() {
    container("pipeline").await;
    let repo = BackupRepository::open("az://pipeline/sg").unwrap();
    let (plan, stores) = plan_with_big_store(16 * MIB);
    let mut pipeline = BackupPipeline::new(repo, plan).concurrency(2);
    for s in &stores {
        pipeline = pipeline.exporter(s.clone());
    }
    let outcome = pipeline.run().await.unwrap();
    let id = outcome.manifest.backup_id;

    let repo = BackupRepository::open("az://pipeline/sg").unwrap();
    assert!(repo.verify(&id).await.unwrap().is_ok());
    let mut restore = RestorePipeline::new(repo.open_latest().await.unwrap());
    for s in &stores {
        restore = restore.importer(s.clone());
    }
    restore.run().await.unwrap();
    for s in &stores {
        assert_eq!(
            s.restored_sha256(),
            Some(noise_sha256(s.seed, s.bytes)),
            "{}",
            s.id
        );
    }
}
