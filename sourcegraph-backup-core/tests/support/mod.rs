//! Shared by the object-storage tests: deterministic incompressible data, a store that streams
//! it, and the shared S3 server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use sourcegraph_backup_core::pipeline::{BackupPipeline, RestorePipeline};
use sourcegraph_backup_core::{
    plan, ArtifactOptions, ArtifactRecord, ArtifactWriter, BackupOption, BackupReader, BackupRepository,
    BackupWriter, DataStore, Deployment, ExportContext, ExportReport, Exporter, ImportContext, ImportReport,
    Importer, Plan, PlanRequest, StoreError, StoreErrorKind, StoreKind, StoreSection, VerifyReport,
};
use sourcegraph_backup_testkit::s3::S3Server;

/// One mebibyte.
pub const MIB: usize = 1024 * 1024;

/// The process-wide S3 server (its `AWS_*` environment applied) with bucket `name` created.
pub async fn bucket(name: &str) -> &'static S3Server {
    let s3 = S3Server::shared().unwrap_or_else(|e| panic!("{e}"));
    s3.create_bucket(name).await.unwrap_or_else(|e| panic!("{e}"));
    s3
}

/// An empty volume store section named `id`, for committing hand-written backups.
pub fn section(id: &str) -> StoreSection {
    StoreSection {
        id: id.into(),
        kind: StoreKind::Volume,
        catalog: vec![],
        details: serde_json::json!({}),
        warnings: vec![],
    }
}

/// Deterministic, incompressible bytes (splitmix64), produced chunk by chunk.
pub struct Noise(u64);

impl Noise {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Noise(seed)
    }

    /// The next `len` bytes (`len` a multiple of 8).
    pub fn chunk(&mut self, len: usize) -> Bytes {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(len);
        Bytes::from(out)
    }
}

/// SHA-256 of the first `len` bytes of `Noise::new(seed)` taken in 1 MiB chunks.
pub fn noise_sha256(seed: u64, len: usize) -> String {
    let mut noise = Noise::new(seed);
    let mut hasher = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        hasher.update(noise.chunk(n));
        left -= n;
    }
    hex::encode(hasher.finalize())
}

/// Writes `mib` MiB of `Noise::new(seed)` to `w` in 1 MiB chunks; returns the generator so a
/// test can keep writing where it stopped.
pub async fn write_noise(w: &mut ArtifactWriter, seed: u64, mib: usize) -> Noise {
    let mut noise = Noise::new(seed);
    for _ in 0..mib {
        w.write(noise.chunk(MIB)).await.unwrap();
    }
    noise
}

/// Artifact `name` of `store` in backup `w`, holding `mib` MiB of `Noise::new(seed)`, finished.
pub async fn noise_artifact(
    w: &BackupWriter,
    store: &str,
    name: &str,
    options: ArtifactOptions,
    seed: u64,
    mib: usize,
) -> ArtifactRecord {
    let mut a = w.artifact(store, name, options).await.unwrap();
    write_noise(&mut a, seed, mib).await;
    a.finish().await.unwrap()
}

/// Artifact `name` of `store` in backup `w` holding just `content`, finished.
pub async fn bytes_artifact(
    w: &BackupWriter,
    store: &str,
    name: &str,
    options: ArtifactOptions,
    content: &'static [u8],
) -> ArtifactRecord {
    let mut a = w.artifact(store, name, options).await.unwrap();
    a.write(Bytes::from_static(content)).await.unwrap();
    a.finish().await.unwrap()
}

/// The `(path, missing)` of every problem `report` names, in its order.
pub fn problem_paths(report: &VerifyReport) -> Vec<(&str, bool)> {
    report
        .problems
        .iter()
        .map(|p| (p.path.as_str(), p.missing))
        .collect()
}

/// Length and hex SHA-256 of the decompressed content of `record`, streamed from `reader`.
pub async fn read_sha256(reader: &BackupReader, record: &ArtifactRecord) -> (usize, String) {
    let mut rx = reader.open_artifact(record).into_chunks();
    let mut hasher = Sha256::new();
    let mut len = 0usize;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.unwrap();
        len += chunk.len();
        hasher.update(&chunk);
    }
    (len, hex::encode(hasher.finalize()))
}

/// Asserts that no object is left below `prefix` in the repository's store.
pub async fn assert_nothing_under(repo: &BackupRepository, prefix: &str) {
    let left: Vec<_> = repo
        .object_store()
        .list(Some(&Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// A backup pipeline into `repo` for `plan`, with `stores` as exporters in that order.
pub fn backup_pipeline<'a>(
    repo: BackupRepository,
    plan: Plan,
    stores: impl IntoIterator<Item = &'a Arc<NoiseStore>>,
    concurrency: usize,
) -> BackupPipeline {
    let mut pipeline = BackupPipeline::new(repo, plan).concurrency(concurrency);
    for s in stores {
        pipeline = pipeline.exporter(s.clone());
    }
    pipeline
}

/// A restore pipeline from `backup` with every store of `stores` as importer.
pub fn restore_pipeline(backup: BackupReader, stores: &[Arc<NoiseStore>]) -> RestorePipeline {
    let mut restore = RestorePipeline::new(backup);
    for s in stores {
        restore = restore.importer(s.clone());
    }
    restore
}

/// Asserts that every store read back exactly the noise it exported.
pub fn assert_all_restored(stores: &[Arc<NoiseStore>]) {
    for s in stores {
        assert_eq!(
            s.restored_sha256(),
            Some(noise_sha256(s.seed, s.bytes)),
            "{}",
            s.id
        );
    }
}

/// The error and all its sources, one line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// A store that exports a small `meta.json` and then `bytes` of noise as `data.bin`, and on
/// import records the SHA-256 of what it read back.
#[derive(Debug)]
pub struct NoiseStore {
    pub id: String,
    pub kind: StoreKind,
    pub seed: u64,
    pub bytes: usize,
    restored: Mutex<Option<String>>,
}

impl NoiseStore {
    /// The content of `meta.json`.
    pub const META: &'static [u8] = b"{\"kind\":\"noise\"}";

    /// The SHA-256 of the `data.bin` the importer read, once it ran.
    pub fn restored_sha256(&self) -> Option<String> {
        self.restored.lock().unwrap().clone()
    }
}

#[async_trait]
impl DataStore for NoiseStore {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> StoreKind {
        self.kind
    }
    fn location(&self) -> String {
        format!("noise store {}", self.id)
    }
    async fn check_reachable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl Exporter for NoiseStore {
    async fn export(&self, ctx: ExportContext) -> Result<ExportReport, StoreError> {
        ctx.put_artifact(
            "meta.json",
            ArtifactOptions::zstd("application/json"),
            Bytes::from_static(Self::META),
        )
        .await?;
        let mut w = ctx
            .artifact("data.bin", ArtifactOptions::zstd("application/octet-stream"))
            .await?;
        let mut noise = Noise::new(self.seed);
        let mut left = self.bytes;
        while left > 0 {
            let n = left.min(MIB);
            w.write(noise.chunk(n)).await?;
            ctx.progress().bytes(&self.id, n as u64);
            left -= n;
        }
        w.finish().await?;
        Ok(ExportReport::default())
    }
}

#[async_trait]
impl Importer for NoiseStore {
    async fn import(&self, ctx: ImportContext) -> Result<ImportReport, StoreError> {
        let meta = ctx.read_small("meta.json").await?;
        if &meta[..] != Self::META {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!("{}: meta.json differs", self.id),
            ));
        }
        let mut rx = ctx.open("data.bin")?.into_chunks();
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        *self.restored.lock().unwrap() = Some(hex::encode(hasher.finalize()));
        Ok(ImportReport {
            bytes,
            ..Default::default()
        })
    }
}

/// The all-Postgres plan for Kubernetes and one noise store per included store: the first
/// streams `big` bytes, the others 64 KiB.
pub fn plan_with_big_store(big: usize) -> (Plan, Vec<Arc<NoiseStore>>) {
    let p = plan(&PlanRequest::new(
        BackupOption::AllPostgres,
        Deployment::Kubernetes,
    ));
    let stores: Vec<Arc<NoiseStore>> = p
        .included_stores()
        .enumerate()
        .map(|(i, s)| {
            Arc::new(NoiseStore {
                id: s.id.clone(),
                kind: s.kind,
                seed: 100 + i as u64,
                bytes: if i == 0 { big } else { 64 * 1024 },
                restored: Mutex::new(None),
            })
        })
        .collect();
    assert!(stores.len() >= 2, "the plan should include several stores");
    (p, stores)
}
