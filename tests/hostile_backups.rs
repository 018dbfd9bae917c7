//! A decompression bomb in every artifact slot (issue 11, point 2): each artifact of a real
//! backup (databases, configuration, a volume) is replaced in turn by 300 KB of zstd that
//! decodes to 6 GiB, with size and SHA-256 fixed in the manifest as an attacker with write
//! access would. Every restore that reads it fails fast, naming the artifact, with bounded
//! memory; none writes 6 GiB anywhere. The backups and restores are the `sourcegraph-backup`
//! command's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sourcegraph_backup_testkit::PgCluster;

/// Builds the `sourcegraph-backup` command (in this test's profile) and returns its path.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "-q", "-p", "sourcegraph-backup-cli"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(profile) = profile_dir.file_name().and_then(|n| n.to_str()) {
        if profile != "debug" {
            cargo.args(["--profile", profile]);
        }
    }
    let status = cargo
        .status()
        .expect("running cargo build -p sourcegraph-backup-cli");
    assert!(status.success(), "cargo build -p sourcegraph-backup-cli failed");
    profile_dir.join("sourcegraph-backup")
}

/// What a run of the command did.
struct Ran {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
    /// Peak resident set of that process alone, in KiB.
    peak_rss_kib: i64,
}

/// Runs the command and measures it with `wait4`: its peak RSS, not other children's (Linux
/// keeps the high-water mark across exec, so it is at least this test process's own at the
/// fork, which stays far below the bound checked).
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's wait cannot replace here
fn run(bin: &Path, args: &[&str]) -> Ran {
    let err_file = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let child = Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(err_file.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: wait4 reaps the child spawned above and fills the status and usage given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    Ran {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stderr: std::fs::read_to_string(err_file.path()).unwrap_or_default(),
        elapsed: started.elapsed(),
        peak_rss_kib: usage.ru_maxrss,
    }
}

/// zstd frames that decode to `frames` × 128 MiB of zeros, built without holding them.
fn zstd_bomb(frames: usize) -> Vec<u8> {
    let mut frame = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..128 {
        frame.write_all(&zeros).unwrap();
    }
    frame.finish().unwrap().repeat(frames)
}

/// Bytes of the files under `dir` (0 when it does not exist).
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap())
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                du(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The only backup in repository `repo`: its directory and its artifacts' paths, each with
/// whether it is stored uncompressed.
fn backup_and_artifacts(repo: &Path) -> (PathBuf, Vec<(String, bool)>) {
    let dir = std::fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("manifest.json").exists())
        .expect("a committed backup");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let paths = m["stores"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["artifacts"].as_array().unwrap().iter())
        .map(|a| {
            let plain = !a["compression"].to_string().contains("zstd");
            (a["path"].as_str().unwrap().to_string(), plain)
        })
        .collect();
    (dir, paths)
}

/// Replaces `path` in `backup` by `bomb` and fixes its size and SHA-256 in the manifest.
/// An uncompressed artifact cannot be a zstd bomb: it becomes a 6 GiB (sparse) file whose size
/// the manifest records honestly (its checksum is never reached).
fn plant(backup: &Path, path: &str, bomb: &[u8], plain: bool) {
    let (size, sha256) = if plain {
        let f = std::fs::File::create(backup.join(path)).unwrap();
        f.set_len(6 << 30).unwrap();
        (6u64 << 30, hex::encode(Sha256::digest(b"not checked")))
    } else {
        std::fs::write(backup.join(path), bomb).unwrap();
        (bomb.len() as u64, hex::encode(Sha256::digest(bomb)))
    };
    let file = backup.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    for store in m["stores"].as_array_mut().unwrap() {
        for a in store["artifacts"].as_array_mut().unwrap() {
            if a["path"] == path {
                a["size"] = size.into();
                a["sha256"] = sha256.clone().into();
                if plain {
                    a["uncompressed_size"] = size.into();
                }
            }
        }
    }
    std::fs::write(&file, serde_json::to_vec(&m).unwrap()).unwrap();
}

/// The Compose volumes besides gitserver-0, left out as external.
const OTHER_VOLUMES: &[&str] = &[
    "zoekt-0-shared",
    "blobstore",
    "redis-cache",
    "grafana",
    "caddy",
    "redis-store",
    "prometheus-v2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bomb_in_every_artifact_slot_fails_fast_by_name() {
    let bin = binary();
    let tmp = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start().await.unwrap();
    cluster.create_database("sg").await.unwrap();
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sourcegraph-backup-testkit/fixtures/frontend.sql");
    cluster.execute_sql_file("sg", &fixture).await.unwrap();
    // Configuration files hold plaintext only: leave out the code host encrypted at rest.
    cluster
        .batch_execute(
            "sg",
            "DELETE FROM external_services WHERE encryption_key_id <> ''",
        )
        .await
        .unwrap();

    // Databases and configuration.
    let pg_repo = tmp.path().join("pg-repo");
    let out = run(
        &bin,
        &[
            "backup",
            "--option",
            "postgres",
            "--pgsql",
            &cluster.url("sg"),
            "--to",
            pg_repo.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // A volume.
    let volume = tmp.path().join("gitserver-0");
    std::fs::create_dir_all(volume.join("repos")).unwrap();
    for i in 0..20 {
        std::fs::write(
            volume.join(format!("repos/file-{i}")),
            format!("content {i}\n").repeat(500),
        )
        .unwrap();
    }
    let vol_repo = tmp.path().join("vol-repo");
    let mut args: Vec<String> = [
        "backup",
        "--option",
        "all",
        "--to",
        vol_repo.to_str().unwrap(),
        "--deployment",
        "compose",
        "--external",
        "pgsql",
        "--volume",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("gitserver-0={}", volume.display()));
    for v in OTHER_VOLUMES {
        args.extend(["--external".to_string(), v.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&bin, &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let bomb = zstd_bomb(48);
    assert!(bomb.len() < 1024 * 1024);
    let mut caught = Vec::new();
    let mut unread = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut peak_rss = 0;
    for (repo, kind) in [(&pg_repo, "pg"), (&vol_repo, "volume")] {
        let (_, artifacts) = backup_and_artifacts(repo);
        for (i, (artifact, plain)) in artifacts.iter().enumerate() {
            let copy = tmp.path().join(format!("{kind}-{i}"));
            copy_dir(repo, &copy);
            let (backup, _) = backup_and_artifacts(&copy);
            plant(&backup, artifact, &bomb, *plain);
            let from = copy.to_str().unwrap().to_string();
            let target = tmp.path().join(format!("target-{kind}-{i}"));
            let args: Vec<String> = if artifact.starts_with("config/") {
                vec![
                    "restore".into(),
                    "--from".into(),
                    from,
                    "--config-files".into(),
                    target.display().to_string(),
                ]
            } else if kind == "pg" {
                let db = format!("restored_{i}");
                cluster.create_database(&db).await.unwrap();
                vec![
                    "restore".into(),
                    "--from".into(),
                    from,
                    "--pgsql".into(),
                    cluster.url(&db),
                ]
            } else {
                vec![
                    "restore".into(),
                    "--from".into(),
                    from,
                    "--volume".into(),
                    format!("gitserver-0={}", target.display()),
                ]
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run(&bin, &args);
            let err = out.stderr.clone();
            peak_rss = peak_rss.max(out.peak_rss_kib);
            if out.code == Some(0) {
                // An artifact this restore does not read (the by-hand scripts, a copy kept for
                // people): nothing of the bomb may have landed anywhere.
                let written = du(&target);
                assert!(written < 10 << 20, "{artifact}: {written} bytes written: {err}");
                unread.push(artifact.clone());
                continue;
            }
            assert_eq!(out.code, Some(1), "{artifact}: {err}");
            assert!(err.contains(artifact.as_str()), "{artifact} not named: {err}");
            slowest = slowest.max(out.elapsed);
            caught.push(artifact.clone());
        }
    }
    for slot in [
        "pgsql/schema.json.zst",
        "pgsql/sequences.sql.zst",
        "pgsql/data/",
        "config/",
        "gitserver-0/",
    ] {
        assert!(
            caught.iter().any(|c| c.starts_with(slot)),
            "no bomb caught in {slot}: {caught:?}"
        );
    }
    eprintln!(
        "bombs caught: {caught:?}\nartifacts a restore does not read: {unread:?}\n\
         slowest refusal {slowest:?}, peak RSS {peak_rss} KiB"
    );
    // Bounds, not benchmarks: decoding 6 GiB takes many seconds and holding it gigabytes.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest refusal took {slowest:?}"
    );
    assert!(peak_rss < 100 * 1024, "a restore peaked at {peak_rss} KiB");
}
