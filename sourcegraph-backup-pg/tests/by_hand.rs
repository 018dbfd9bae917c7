//! The backup's `restore.sh` (zstd and psql only, the commands the crate docs give) restores
//! the fixtures into a fresh database; the oracle holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_identical, backup_quiet, export_options, load, local_repo, two_clusters};
use sourcegraph_backup_core::BackupRepository;
use sourcegraph_backup_pg::PgExportOptions;
use sourcegraph_backup_testkit::{PgClientTools, PgCluster};

/// Runs `restore.sh` of store `store` of the newest backup under `dir` into `target`.
async fn run_restore_sh(dir: &std::path::Path, store: &str, cluster: &PgCluster, db: &str) {
    let repo = BackupRepository::local(dir).unwrap();
    let id = repo.list().await.unwrap()[0].id.clone();
    let store_dir = dir.join(&id).join(store);
    let script = store_dir.join("restore.sh");
    assert!(script.exists(), "{} missing", script.display());
    let tools = PgClientTools::for_server_major(cluster.major()).unwrap();
    let cmd = tools.command("psql");
    let path = format!(
        "{}:{}",
        tools.bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Reuse the tool's environment (LD_LIBRARY_PATH, scrubbed PG* variables), run sh instead.
    let mut sh = std::process::Command::new("sh");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let out = sh
        .arg(&script)
        .env("PATH", path)
        .env("TARGET", cluster.url(db))
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore.sh failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_sh_restores_the_frontend_fixture() {
    let (src, dst) = two_clusters().await;
    let mut fixtures = vec!["frontend.sql"];
    if src.major() >= 15 {
        fixtures.push("frontend-pg15.sql");
    }
    load(&src, "sg", &fixtures).await;
    dst.create_database("sg").await.unwrap();
    let (dir, repo) = local_repo();
    let options = PgExportOptions {
        split_threshold_bytes: 16 * 1024,
        ..export_options()
    };
    backup_quiet(&repo, "pgsql", &src, "sg", options).await;
    run_restore_sh(dir.path(), "pgsql", &dst, "sg").await;
    assert_identical(&src, "sg", &dst, "sg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_sh_restores_the_adversarial_fixture() {
    let (src, dst) = two_clusters().await;
    load(&src, "adv", &["adversarial.sql"]).await;
    dst.create_database("adv").await.unwrap();
    let (dir, repo) = local_repo();
    let options = PgExportOptions {
        allow_generic: true,
        ..export_options()
    };
    backup_quiet(&repo, "pgsql", &src, "adv", options).await;
    run_restore_sh(dir.path(), "pgsql", &dst, "adv").await;
    assert_identical(&src, "adv", &dst, "adv").await;
}
