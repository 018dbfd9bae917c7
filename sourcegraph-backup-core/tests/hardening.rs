//! Hostile or damaged repositories and secrets (issue 11): private local files, decompression
//! bombs, unreadable newest manifests, duplicate stores, symlinked artifacts, leases and abort,
//! interruption, a full disk, secrets in locations and object-store errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use sourcegraph_backup_core::repository::BackupState;
use sourcegraph_backup_core::{
    ArtifactOptions, BackupOption, BackupRepository, BackupWriter, CoreError, SourceInfo, StoreKind,
    StoreSection,
};

fn section(id: &str) -> StoreSection {
    StoreSection {
        id: id.into(),
        kind: StoreKind::Config,
        catalog: vec![],
        details: serde_json::json!({}),
        warnings: vec![],
    }
}

async fn put(backup: &BackupWriter, store: &str, name: &str, data: &[u8]) {
    let mut w = backup
        .artifact(store, name, ArtifactOptions::zstd("application/octet-stream"))
        .await
        .unwrap();
    w.write(Bytes::copy_from_slice(data)).await.unwrap();
    w.finish().await.unwrap();
}

/// A committed backup with a small and a larger artifact in one store.
async fn committed(repo: &BackupRepository) -> String {
    let backup = repo.start_backup(BackupOption::ConfigOnly);
    put(
        &backup,
        "config",
        "site.jsonc",
        b"{\"externalURL\": \"https://sg\"}",
    )
    .await;
    put(&backup, "config", "data/part.0000", &vec![b'x'; 300_000]).await;
    backup
        .commit(vec![section("config")], None, SourceInfo::default(), vec![])
        .await
        .unwrap();
    backup.id().to_string()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_repositories_are_private_whatever_the_umask() {
    // The most permissive umask: every mode the repository sets is its own doing.
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0) };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repo = BackupRepository::local(&root).unwrap();
    let id = committed(&repo).await;
    unsafe { libc::umask(old) };

    let mut seen = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 3, "manifest and two artifacts: {seen}");
    assert!(root.join(&id).join("manifest.json").exists());
}

/// zstd frames that decode to `frames` × 128 MiB of zeros, built without holding them.
fn zstd_bomb(frames: usize) -> Vec<u8> {
    let mut frame = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..128 {
        frame.write_all(&zeros).unwrap();
    }
    let frame = frame.finish().unwrap();
    frame.repeat(frames)
}

/// Replaces artifact `path` of backup `id` with `bytes` and fixes its size and SHA-256 in the
/// manifest (as an attacker with write access would); `uncompressed` overrides the recorded
/// uncompressed size when given.
fn plant(root: &Path, id: &str, path: &str, bytes: &[u8], uncompressed: Option<u64>) {
    std::fs::write(root.join(id).join(path), bytes).unwrap();
    let manifest_path = root.join(id).join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for store in m["stores"].as_array_mut().unwrap() {
        for a in store["artifacts"].as_array_mut().unwrap() {
            if a["path"] == path {
                a["size"] = bytes.len().into();
                a["sha256"] = hex::encode(Sha256::digest(bytes)).into();
                if let Some(u) = uncompressed {
                    a["uncompressed_size"] = u.into();
                }
            }
        }
    }
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_stops_at_the_recorded_size_in_every_read_path() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(tmp.path()).unwrap();
    let id = committed(&repo).await;
    let bomb = zstd_bomb(48); // 6 GiB of zeros
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    let rss_before = peak_rss_kib();
    let started = std::time::Instant::now();

    for (path, inflate) in [
        ("config/site.jsonc", None),
        ("config/data/part.0000", None),
        // The manifest lies about the size too: a read into memory still refuses.
        ("config/site.jsonc", Some(6u64 << 30)),
    ] {
        plant(tmp.path(), &id, path, &bomb, inflate);
        let reader = repo.open_backup(&id).await.unwrap();
        let record = reader.manifest().stores[0]
            .artifacts
            .iter()
            .find(|a| a.path == path)
            .unwrap()
            .clone();
        // Verify checks the stored bytes only, which match: the bomb is caught on decoding.
        assert!(reader.open_artifact(&record).verify().await.is_ok());

        let err = reader.open_artifact(&record).read_to_end().await.unwrap_err();
        assert!(
            matches!(&err, CoreError::CorruptArtifact { path: p, .. } if p == path),
            "{err}"
        );
        if inflate.is_some() {
            continue; // streamed, what the manifest records is what it may decode to
        }

        let mut chunks = reader.open_artifact(&record).into_chunks();
        let mut failed = None;
        while let Some(c) = chunks.recv().await {
            if let Err(e) = c {
                failed = Some(e);
                break;
            }
        }
        let err = failed.expect("streaming the bomb must fail");
        assert!(err.to_string().contains(path), "{err}");

        let r = reader.open_artifact(&record);
        let err = tokio::task::spawn_blocking(move || {
            std::io::copy(&mut r.into_blocking_read(), &mut std::io::sink())
        })
        .await
        .unwrap()
        .unwrap_err();
        assert!(err.to_string().contains(path), "{err}");
    }
    let elapsed = started.elapsed();
    let grown = peak_rss_kib().saturating_sub(rss_before);
    // Bounds, not benchmarks: 6 GiB decoded would take many seconds and gigabytes.
    assert!(elapsed.as_secs_f64() < 2.0, "took {elapsed:?}");
    assert!(grown < 100 * 1024, "peak RSS grew by {grown} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_newest_backup_is_listed_and_never_skipped_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(tmp.path()).unwrap();
    let older = committed(&repo).await;
    let newer = committed(&repo).await;
    assert!(newer > older);

    // Truncated manifest.
    let manifest = tmp.path().join(&newer).join("manifest.json");
    let full = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &full[..full.len() / 2]).unwrap();
    let states = repo.list_all().await.unwrap();
    assert!(
        matches!(&states[0], BackupState::Unreadable { id, reason } if *id == newer && reason.contains("malformed")),
        "{states:?}"
    );
    assert!(
        matches!(&states[1], BackupState::Complete(c) if c.id == older),
        "{states:?}"
    );
    let err = repo.open_latest().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CoreError::NewestUnreadable { .. }), "{msg}");
    assert!(
        msg.contains(&newer) && msg.contains(&older) && msg.contains("--backup"),
        "{msg}"
    );

    // A format from a newer release.
    let mut m: serde_json::Value = serde_json::from_slice(&full).unwrap();
    m["format_version"] = 2.into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let states = repo.list_all().await.unwrap();
    assert!(
        matches!(&states[0], BackupState::Unreadable { reason, .. } if reason.contains("format version 2")),
        "{states:?}"
    );

    // The only backup unreadable: still an error naming it, not "no backups".
    std::fs::remove_dir_all(tmp.path().join(&older)).unwrap();
    let err = repo.open_latest().await.unwrap_err().to_string();
    assert!(err.contains(&newer) && !err.contains("newest readable"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_stores_and_symlinked_artifacts_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repo = BackupRepository::local(&root).unwrap();
    let id = committed(&repo).await;

    // A store listed twice (its second copy with no artifacts).
    let manifest = root.join(&id).join("manifest.json");
    let original = std::fs::read(&manifest).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let mut twin = m["stores"][0].clone();
    twin["artifacts"] = serde_json::json!([]);
    m["stores"].as_array_mut().unwrap().push(twin);
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = repo.open_backup(&id).await.unwrap_err().to_string();
    assert!(err.contains("store config is listed twice"), "{err}");
    std::fs::write(&manifest, &original).unwrap();

    // An artifact replaced by a symlink to a file outside the repository, checksum fixed.
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, b"secret outside the repository").unwrap();
    let bytes = zstd::encode_all(&b"secret outside the repository"[..], 1).unwrap();
    plant(&root, &id, "config/site.jsonc", &bytes, None);
    std::fs::write(&outside, &bytes).unwrap();
    let artifact = root.join(&id).join("config/site.jsonc");
    std::fs::remove_file(&artifact).unwrap();
    std::os::unix::fs::symlink(&outside, &artifact).unwrap();
    let reader = repo.open_backup(&id).await.unwrap();
    let record = reader.manifest().stores[0]
        .artifact("site.jsonc")
        .unwrap()
        .clone();
    let err = reader
        .open_artifact(&record)
        .read_to_end()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config/site.jsonc") && err.contains("symbolic link"),
        "{err}"
    );
    let report = repo.verify(&id).await.unwrap();
    assert!(!report.is_ok(), "verify names it too: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_backup_holds_a_lease_and_abort_removes_what_it_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(tmp.path()).unwrap();
    let running = repo.start_backup(BackupOption::AllData);
    put(&running, "vol", "a.bin", b"partial").await;
    let states = repo.list_all().await.unwrap();
    assert!(
        matches!(&states[0], BackupState::Incomplete { lease: Some(l), last_modified: Some(_), .. }
            if l.is_live(chrono::Utc::now()) && l.backup_id == running.id()),
        "{states:?}"
    );
    assert!(
        repo.clean_incomplete().await.unwrap().is_empty(),
        "clean leaves it alone"
    );
    assert!(tmp.path().join(running.id()).join("vol/a.bin").exists());

    running.abort().await.unwrap();
    assert!(
        !tmp.path().join(running.id()).exists(),
        "abort removes everything"
    );
    assert!(repo.list_all().await.unwrap().is_empty());
    let err = running
        .commit(vec![section("vol")], None, SourceInfo::default(), vec![])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("aborted"), "{err}");
}

#[test]
fn secrets_never_reach_location_errors() {
    for url in [
        "abfs://AK:SECRETKEY@x/p?sig=SECRETSIG",
        "azure://acct.blob.core.windows.net/c/p?sig=SECRETSIG",
        "s3://AKIA:SECRETKEY@bucket/p?X-Amz-Signature=SECRETSIG",
        "ftp://user:SECRETKEY@host/p?token=SECRETSIG",
    ] {
        let shown = match BackupRepository::open(url) {
            Ok(repo) => format!("{} {repo:?}", repo.location()),
            Err(e) => format!("{e} {e:?}"),
        };
        assert!(!shown.contains("SECRET"), "{url} -> {shown}");
    }
}

/// An exporter that finishes one artifact, streams 12 MiB of a second one (a multipart upload
/// in flight), says so, and then never ends: a long backup to interrupt.
#[derive(Debug)]
struct Endless {
    started: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

#[async_trait::async_trait]
impl sourcegraph_backup_core::DataStore for Endless {
    fn id(&self) -> &str {
        "config"
    }
    fn kind(&self) -> StoreKind {
        StoreKind::Config
    }
    fn location(&self) -> String {
        "an endless test source".into()
    }
    async fn check_reachable(&self) -> Result<(), sourcegraph_backup_core::StoreError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl sourcegraph_backup_core::Exporter for Endless {
    async fn export(
        &self,
        ctx: sourcegraph_backup_core::ExportContext,
    ) -> Result<sourcegraph_backup_core::ExportReport, sourcegraph_backup_core::StoreError> {
        ctx.put_artifact(
            "done.json",
            ArtifactOptions::plain("application/json"),
            Bytes::from_static(b"{}"),
        )
        .await?;
        let mut w = ctx
            .artifact("big.bin", ArtifactOptions::plain("application/octet-stream"))
            .await?;
        for i in 0..12u8 {
            w.write(Bytes::from(vec![i; 1 << 20])).await?;
        }
        if let Some(tx) = self.started.lock().unwrap().take() {
            let _ = tx.send(());
        }
        std::future::pending::<()>().await;
        unreachable!()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_removes_everything_it_wrote() {
    use sourcegraph_backup_core::pipeline::BackupPipeline;
    use sourcegraph_backup_core::{plan, Deployment, PlanRequest};
    let tmp = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(tmp.path()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let err = BackupPipeline::new(
        repo.clone(),
        plan(&PlanRequest::new(
            BackupOption::ConfigOnly,
            Deployment::DockerCompose,
        )),
    )
    .exporter(std::sync::Arc::new(Endless {
        started: std::sync::Mutex::new(Some(tx)),
    }))
    .run_until(async {
        let _ = rx.await;
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, CoreError::Interrupted { removed: true, .. }),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "partial files and directories remain: {left:?}");
}

/// Writes `mib` MiB of incompressible bytes as one artifact.
#[derive(Debug)]
struct Filler {
    mib: usize,
}

#[async_trait::async_trait]
impl sourcegraph_backup_core::DataStore for Filler {
    fn id(&self) -> &str {
        "config"
    }
    fn kind(&self) -> StoreKind {
        StoreKind::Config
    }
    fn location(&self) -> String {
        "a filler test source".into()
    }
    async fn check_reachable(&self) -> Result<(), sourcegraph_backup_core::StoreError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl sourcegraph_backup_core::Exporter for Filler {
    async fn export(
        &self,
        ctx: sourcegraph_backup_core::ExportContext,
    ) -> Result<sourcegraph_backup_core::ExportReport, sourcegraph_backup_core::StoreError> {
        let mut w = ctx
            .artifact("big.bin", ArtifactOptions::plain("application/octet-stream"))
            .await?;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..self.mib {
            let chunk: Vec<u8> = (0..1 << 20)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            w.write(Bytes::from(chunk)).await?;
        }
        w.finish().await?;
        Ok(sourcegraph_backup_core::ExportReport::default())
    }
}

/// A 4 MiB tmpfs, unmounted on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount() -> Self {
        let dir = std::env::temp_dir().join(format!("sgb-full-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs and needs root to do so"
        );
        TinyDisk(dir)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn used_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                total += e.metadata().unwrap().len();
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_backup_by_name_and_leaves_nothing_so_a_retry_fails_the_same_way() {
    use sourcegraph_backup_core::pipeline::BackupPipeline;
    use sourcegraph_backup_core::{plan, Deployment, PlanRequest};
    let disk = TinyDisk::mount();
    let repo = BackupRepository::local(&disk.0).unwrap();
    for _attempt in 0..3 {
        let err = BackupPipeline::new(
            repo.clone(),
            plan(&PlanRequest::new(
                BackupOption::ConfigOnly,
                Deployment::DockerCompose,
            )),
        )
        .exporter(std::sync::Arc::new(Filler { mib: 8 }))
        .run()
        .await
        .unwrap_err();
        let mut text = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        assert!(text.contains("config/big.bin"), "{text}");
        assert!(text.to_lowercase().contains("no space left"), "{text}");
        assert_eq!(used_bytes(&disk.0), 0, "a failed backup leaves nothing behind");
    }
    assert!(repo.list_all().await.unwrap().is_empty());
}
