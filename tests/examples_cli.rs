//! One smoke test per example program: each still does what its doc comment (and the README)
//! says. Everything the command line offers is tested on the `sourcegraph-backup` command, in
//! `tests/cli.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sourcegraph_backup_testkit::{oracle, PgCluster};

/// Builds the examples once per test run and returns the directory holding them.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--examples", "-q", "-p", "sourcegraph-backup"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if let Some(profile) = profile_dir.file_name().and_then(|n| n.to_str()) {
            if profile != "debug" {
                cargo.args(["--profile", profile]);
            }
        }
        let status = cargo.status().expect("running cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
        profile_dir.join("examples")
    })
}

fn run(example: &str, args: &[&str]) -> Output {
    let out = Command::new(examples_dir().join(example))
        .args(args)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap_or_else(|e| panic!("spawning {example}: {e}"));
    eprintln!(
        "$ {example} {}\n-> {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn config_only_backs_up_and_restores_files_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, repo, output) = (
        tmp.path().join("in"),
        tmp.path().join("repo"),
        tmp.path().join("out"),
    );
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("site-config.json"),
        "{\n  // kept\n  \"externalURL\": \"https://sg.example.com\",\n}\n",
    )
    .unwrap();
    std::fs::write(
        input.join("global-settings.json"),
        "{\"search.defaultPatternType\": \"keyword\"}\n",
    )
    .unwrap();
    std::fs::write(
        input.join("extsvc-config.json"),
        "{\"GITHUB\": [{\"url\": \"https://github.com\", \"token\": \"t\", \"repos\": [\"acme/app\"]}]}\n",
    )
    .unwrap();
    let out = run(
        "config_only",
        &["backup", "--config-files", path(&input), "--to", path(&repo)],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out)
        .lines()
        .any(|l| l.starts_with("config ") && l.ends_with("included")));
    let args = ["restore", "--from", path(&repo), "--config-files", path(&output)];
    let out = run("config_only", &[&args[..], &["--dry-run"]].concat());
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("would restore") && !output.exists());
    let out = run("config_only", &args);
    assert_eq!(out.status.code(), Some(0));
    for f in ["site-config.json", "global-settings.json", "extsvc-config.json"] {
        assert_eq!(
            std::fs::read(input.join(f)).unwrap(),
            std::fs::read(output.join(f)).unwrap(),
            "{f}"
        );
    }
    // Neither place given: refused by the argument parser.
    assert_eq!(
        run("config_only", &["backup", "--to", path(&repo)]).status.code(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_only_restores_an_identical_main_database() {
    let cluster = PgCluster::start().await.unwrap();
    cluster.create_database("sg").await.unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sourcegraph-backup-testkit/fixtures/frontend.sql");
    cluster.execute_sql_file("sg", &fixture).await.unwrap();
    cluster.create_database("sg_restored").await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo = path(tmp.path()).to_string();
    let (source, target) = (cluster.url("sg"), cluster.url("sg_restored"));
    let out = tokio::task::spawn_blocking(move || {
        let backup = run("postgres_only", &["backup", "--pgsql", &source, "--to", &repo]);
        let restore = run("postgres_only", &["restore", "--from", &repo, "--pgsql", &target]);
        (backup, restore)
    })
    .await
    .unwrap();
    assert_eq!(out.0.status.code(), Some(0));
    assert!(stdout(&out.0)
        .lines()
        .any(|l| l.starts_with("codeintel-db ") && l.contains("not given")));
    assert_eq!(out.1.status.code(), Some(0));
    oracle::compare(&cluster, "sg", &cluster, "sg_restored")
        .await
        .unwrap()
        .assert_identical();
}

#[test]
fn all_data_backs_up_and_restores_a_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("gitserver-0");
    std::fs::create_dir_all(volume.join("github.com/acme/app.git/objects")).unwrap();
    std::fs::write(
        volume.join("github.com/acme/app.git/HEAD"),
        "ref: refs/heads/main\n",
    )
    .unwrap();
    let repo = tmp.path().join("repo");
    let mut args = vec![
        "backup".to_string(),
        "--to".into(),
        path(&repo).into(),
        "--volume".into(),
        format!("gitserver-0={}", volume.display()),
    ];
    for external in [
        "pgsql",
        "zoekt-0-shared",
        "blobstore",
        "redis-cache",
        "redis-store",
        "prometheus-v2",
        "grafana",
        "caddy",
    ] {
        args.extend(["--external".to_string(), external.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("all_data", &args);
    assert_eq!(out.status.code(), Some(0));
    let restored = tmp.path().join("restored");
    let spec = format!("gitserver-0={}", restored.display());
    let out = run("all_data", &["restore", "--from", path(&repo), "--volume", &spec]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out)
        .lines()
        .any(|l| l.starts_with("gitserver-0 ") && l.ends_with("restored")));
    assert_eq!(tree(&volume), tree(&restored));
    // Into the same, now non-empty directory: refused, naming the way out.
    let out = run("all_data", &["restore", "--from", path(&repo), "--volume", &spec]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}
