//! The `sourcegraph-backup` command driven as a user would: the built binary is spawned with
//! arguments, its exit codes, stdout (`--json`) and stderr are checked, and restored databases
//! are compared with the testkit oracle.
//!
//! `run(OPTION, args)` runs the command with `args`; a `backup` gets `--option OPTION` (one of
//! [`CONFIG`], [`POSTGRES`], [`ALL`]), other verbs ignore it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use sourcegraph_backup_testkit::{oracle, PgCluster};

/// Issue 11 on the command line: role maps, every backup listed, `clean`, interrupted
/// backups, messages, secrets.
#[path = "cli/hardening.rs"]
mod hardening;

/// The verbs of issue 12: plan, compare, forget, progress events, logs.
#[path = "cli/verbs.rs"]
mod verbs;

/// `--option config`.
const CONFIG: &str = "config";
/// `--option postgres`.
const POSTGRES: &str = "postgres";
/// `--option all`.
const ALL: &str = "all";

/// Builds the command once per test run (`cargo build -p sourcegraph-backup-cli`, in the
/// profile of this test) and returns its path, `target/<profile>/sourcegraph-backup`.
fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // The test binary is target/<profile>/deps/cli-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "-q", "-p", "sourcegraph-backup-cli"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some(profile) => {
                cargo.args([
                    "--profile",
                    if profile == "release" { "release" } else { profile },
                ]);
            }
        }
        let status = cargo
            .status()
            .expect("running cargo build -p sourcegraph-backup-cli");
        assert!(status.success(), "cargo build -p sourcegraph-backup-cli failed");
        let bin = profile_dir.join("sourcegraph-backup");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// `args` with `--option OPTION` after a leading `backup`.
fn with_option(option: &str, args: &[String]) -> Vec<String> {
    let mut out: Vec<String> = args.to_vec();
    if out.first().is_some_and(|a| a == "backup") {
        out.splice(1..1, ["--option".to_string(), option.to_string()]);
    }
    out
}

/// Runs the command with `args` (a `backup` with `--option OPTION`), without PGPASSWORD.
fn run(option: &str, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_with(&with_option(option, &args), &[])
}

/// Runs the command with exactly `args` and extra environment variables.
fn run_with(args: &[String], env: &[(&str, &str)]) -> Output {
    let out = Command::new(binary())
        .args(args)
        .env_remove("PGPASSWORD")
        .env_remove("RUST_LOG")
        .env_remove("DEPLOY_TYPE")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("spawning sourcegraph-backup: {e}"));
    eprintln!(
        "$ sourcegraph-backup {}\n-> {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the command with exactly `args`.
fn sg(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_with(&args, &[])
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every verb and, per verb, flags its help must show.
const HELP: &[(&str, &[&str])] = &[
    (
        "backup",
        &[
            "--option <OPTION>",
            "--to <REPO>",
            "--pgsql <URL>",
            "--codeintel <URL>",
            "--codeinsights <URL>",
            "--from-env",
            "--config-db <URL>",
            "--config-files <DIR>",
            "--volume <NAME=PATH>",
            "--volumes-root <DIR>",
            "--deployment <KIND>",
            "DEPLOY_TYPE",
            "--external <NAME>",
            "--skip-recreatable",
            "--databases-stopped",
            "--allow-generic",
            "--carry-encrypted",
            "--jobs <N>",
            "--json",
            "--progress <MODE>",
        ],
    ),
    (
        "restore",
        &[
            "--from <REPO>",
            "--backup <ID>",
            "--pgsql <URL>",
            "--codeintel <URL>",
            "--codeinsights <URL>",
            "--from-env",
            "--config-db <URL>",
            "--config-files <DIR>",
            "--volume <NAME=PATH>",
            "--clean",
            "--force",
            "--dry-run",
            "--role-map <SOURCE=TARGET>",
            "--owners",
            "--grants",
            "--jobs <N>",
            "--json",
            "--progress <MODE>",
        ],
    ),
    ("verify", &["--from <REPO>", "--backup <ID>", "--json"]),
    ("list", &["--from <REPO>", "--json"]),
    ("clean", &["--from <REPO>", "--json"]),
    (
        "plan",
        &[
            "--option <OPTION>",
            "--pgsql <URL>",
            "--from-env",
            "--config-files <DIR>",
            "--volume <NAME=PATH>",
            "--deployment <KIND>",
            "--external <NAME>",
            "--skip-recreatable",
            "--json",
        ],
    ),
    (
        "compare",
        &[
            "--pgsql <URL>",
            "--with <URL>",
            "--codeintel <URL>",
            "--codeintel-with <URL>",
            "--codeinsights <URL>",
            "--codeinsights-with <URL>",
            "--json",
        ],
    ),
    (
        "forget",
        &[
            "--from <REPO>",
            "--keep-last <N>",
            "--keep-daily <N>",
            "--keep-weekly <N>",
            "--dry-run",
            "--json",
        ],
    ),
];

#[test]
fn help_lists_every_verb_and_its_flags() {
    let out = sg(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for (verb, flags) in HELP {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(verb)),
            "--help lacks {verb}:\n{text}"
        );
        let out = sg(&[verb, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{verb} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in *flags {
            assert!(help.contains(flag), "{verb} --help lacks {flag}:\n{help}");
        }
    }
    let out = sg(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sourcegraph-backup "));
}

#[test]
fn bad_arguments_exit_2_with_one_usage_line() {
    for args in [
        &["backup", "--no-such-flag"][..],
        &["backup"],
        &["frobnicate"],
        &["verify", "--from", "x", "--jobs", "2"],
        &["forget", "--from", "x"],
        &["plan"],
    ] {
        let out = sg(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("Usage: ")).count(),
            1,
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    // Values the command does not take: exit 2, saying what it does take.
    for (args, expected) in [
        (
            &["backup", "--option", "everything", "--to", "x"][..],
            "config, postgres, all",
        ),
        (&["restore", "--from", "x", "--jobs", "0"], "1..=256"),
        (
            &[
                "backup",
                "--option",
                "all",
                "--to",
                "x",
                "--volume",
                "no-equals-sign",
            ],
            "is not NAME=PATH",
        ),
        (
            &[
                "backup",
                "--option",
                "all",
                "--to",
                "x",
                "--deployment",
                "openshift",
            ],
            "compose or kubernetes",
        ),
        (
            &["restore", "--from", "x", "--role-map", "a"],
            "is not SOURCE=TARGET",
        ),
    ] {
        let out = sg(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.starts_with("error: invalid value"), "{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    // Found after parsing: where the configuration is was not said.
    let dir = tempfile::tempdir().unwrap();
    let out = run(CONFIG, &["backup", "--to", path(dir.path())]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("Usage: sourcegraph-backup backup"), "{err}");
    assert!(
        err.contains("--config-db URL") && err.contains("--config-files DIR"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a refused backup wrote something"
    );
    // Volumes with an option that holds none.
    let out = sg(&[
        "backup",
        "--option",
        "postgres",
        "--to",
        path(dir.path()),
        "--pgsql",
        "postgres://postgres@127.0.0.1:1/sg",
        "--volume",
        "gitserver-0=/tmp",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("only --option all backs up volumes"),
        "{}",
        stderr(&out)
    );
}

fn write_config_files(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("site-config.json"),
        "{\n  // the most essential item\n  \"externalURL\": \"https://sg.example.com\",\n  \"auth.providers\": [{ \"type\": \"builtin\" }],\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("global-settings.json"),
        "{\n  \"search.defaultPatternType\": \"keyword\" // trailing comment\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("extsvc-config.json"),
        "{\n  \"GITHUB\": [{ \"url\": \"https://github.com\", \"token\": \"ghp_notarealtoken\", \"repos\": [\"acme/app\"] }]\n}\n",
    )
    .unwrap();
}

#[test]
fn config_files_round_trip_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, repo, output) = (
        tmp.path().join("in"),
        tmp.path().join("repo"),
        tmp.path().join("out"),
    );
    write_config_files(&input);

    let out = run(
        CONFIG,
        &[
            "backup",
            "--config-files",
            path(&input),
            "--to",
            path(&repo),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let summary = stdout_json(&out);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["option"], "config-only");
    let stores = summary["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 1);
    assert_eq!(stores[0]["store"], "config");
    assert_eq!(stores[0]["status"], "included");
    assert!(stores[0]["stored_bytes"].as_u64().unwrap() > 0);
    let id = summary["backup_id"].as_str().unwrap().to_string();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ghp_notarealtoken"));

    let out = run(CONFIG, &["verify", "--from", path(&repo)]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(CONFIG, &["list", "--from", path(&repo), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let list = stdout_json(&out);
    assert_eq!(list["backups"][0]["id"], id.as_str());

    let out = run(
        CONFIG,
        &[
            "restore",
            "--from",
            path(&repo),
            "--backup",
            &id,
            "--config-files",
            path(&output),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    for f in ["site-config.json", "global-settings.json", "extsvc-config.json"] {
        assert_eq!(
            std::fs::read(input.join(f)).unwrap(),
            std::fs::read(output.join(f)).unwrap(),
            "{f}"
        );
    }

    // A corrupted artifact: verify names it and exits 1.
    let site = repo.join(&id).join("config/files/site-config.json");
    std::fs::write(&site, b"{}").unwrap();
    let out = run(CONFIG, &["verify", "--from", path(&repo)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("config/files/site-config.json"));
}

#[test]
fn missing_backup_location_is_one_error_line() {
    let out = run(POSTGRES, &["list", "--from", "/nonexistent/backups"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: backup location /nonexistent/backups"));
}

// ---- databases ------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sourcegraph-backup-testkit/fixtures")
        .join(name)
}

/// The three databases of a Sourcegraph-shaped instance on `cluster`.
async fn load_instance(cluster: &PgCluster) {
    let mut frontend = vec!["frontend.sql"];
    if cluster.major() >= 15 {
        frontend.push("frontend-pg15.sql");
    }
    for (db, files) in [
        ("sg", frontend),
        ("codeintel", vec!["codeintel.sql"]),
        ("codeinsights", vec!["codeinsights.sql"]),
    ] {
        cluster.create_database(db).await.unwrap();
        for f in files {
            cluster.execute_sql_file(db, &fixture(f)).await.unwrap();
        }
    }
}

async fn create_empty(cluster: &PgCluster) {
    for db in ["sg", "codeintel", "codeinsights"] {
        cluster.create_database(db).await.unwrap();
    }
}

fn db_args(cluster: &PgCluster) -> Vec<String> {
    vec![
        "--pgsql".into(),
        cluster.url("sg"),
        "--codeintel".into(),
        cluster.url("codeintel"),
        "--codeinsights".into(),
        cluster.url("codeinsights"),
    ]
}

async fn assert_same_instance(src: &PgCluster, dst: &PgCluster) {
    for db in ["sg", "codeintel", "codeinsights"] {
        let report = oracle::compare(src, db, dst, db).await.unwrap();
        assert!(report.is_identical(), "{db}: {:?}", report.differences());
    }
}

/// Runs the command on a blocking thread (the clusters live on the test's runtime); a
/// `backup` with `--option OPTION`.
async fn run_async(option: &'static str, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || run_with(&with_option(option, &args), &[]))
        .await
        .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_round_trip_is_identical() {
    let (src, dst) = tokio::join!(PgCluster::start(), PgCluster::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    tokio::join!(load_instance(&src), create_empty(&dst));
    let tmp = tempfile::tempdir().unwrap();
    let repo = path(tmp.path()).to_string();

    let mut args = strings(&["backup", "--to", &repo, "--json", "--jobs", "2"]);
    args.extend(db_args(&src));
    let out = run_async(POSTGRES, args).await;
    assert_eq!(out.status.code(), Some(0));
    let summary = stdout_json(&out);
    let done: Vec<&str> = summary["stores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "included")
        .map(|s| s["store"].as_str().unwrap())
        .collect();
    for store in ["config", "pgsql", "codeintel-db", "codeinsights-db"] {
        assert!(done.contains(&store), "{store} not in {done:?}");
    }

    let out = run_async(POSTGRES, strings(&["verify", "--from", &repo, "--json"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["ok"], true);

    let mut args = strings(&["restore", "--from", &repo, "--json"]);
    args.extend(db_args(&dst));
    let out = run_async(POSTGRES, args).await;
    assert_eq!(out.status.code(), Some(0));
    let restored = stdout_json(&out);
    // The databases; the configuration is in the restored main database already.
    assert_eq!(
        restored["stores"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "restored")
            .count(),
        3
    );
    assert_same_instance(&src, &dst).await;

    // compare, the oracle offered to users: the restored instance is identical ...
    let mut pairs = Vec::new();
    for (flag, with, db) in [
        ("--pgsql", "--with", "sg"),
        ("--codeintel", "--codeintel-with", "codeintel"),
        ("--codeinsights", "--codeinsights-with", "codeinsights"),
    ] {
        pairs.extend([flag.to_string(), src.url(db), with.to_string(), dst.url(db)]);
    }
    let mut args = strings(&["compare", "--json"]);
    args.extend(pairs.clone());
    let out = run_async(POSTGRES, args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["ok"], true);
    let databases = report["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 3);
    for d in databases {
        assert_eq!(d["identical"], true, "{d}");
        assert!(d["report"]["compared"]["tables"].as_u64().unwrap() > 0, "{d}");
    }
    // ... until one row of the target changes: exit 1, and that table is the one difference.
    dst.batch_execute(
        "sg",
        "UPDATE public.saved_searches SET description = 'planted' WHERE id = 1",
    )
    .await
    .unwrap();
    let mut args = strings(&["compare"]);
    args.extend(pairs);
    let out = run_async(POSTGRES, args).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let differences: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("table: ") || l.starts_with("schema: ") || l.starts_with("sequence: "))
        .collect();
    assert_eq!(differences.len(), 1, "{text}");
    assert!(differences[0].contains("saved_searches"), "{text}");
    assert!(text.contains("1 differences:"), "{text}");
    assert_eq!(
        text.matches("identical: ").count(),
        2,
        "codeintel and codeinsights are still identical: {text}"
    );
    let out = run_async(
        POSTGRES,
        strings(&[
            "compare",
            "--pgsql",
            &src.url("sg"),
            "--with",
            &dst.url("sg"),
            "--skip-schema",
            "--json",
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let report = stdout_json(&out);
    assert_eq!(report["ok"], false);
    let d = &report["databases"][0];
    assert_eq!(d["database"], "pgsql");
    assert_eq!(d["differences"].as_array().unwrap().len(), 1, "{d}");
    assert!(d["report"]["schema"].as_array().unwrap().is_empty());
}

fn git(args: &[&str], dir: &Path) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .expect("git is needed: apt-get install git");
    assert!(status.success(), "git {args:?}");
}

/// A gitserver-like volume with one bare repository holding a commit.
fn make_gitserver(root: &Path) {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&["init", "-q", "-b", "main"], &work);
    std::fs::write(work.join("README.md"), "hello\n").unwrap();
    git(&["add", "."], &work);
    git(&["commit", "-q", "-m", "first"], &work);
    let volume = root.join("gitserver-0");
    std::fs::create_dir_all(volume.join("github.com/acme")).unwrap();
    git(
        &[
            "clone",
            "-q",
            "--bare",
            path(&work),
            path(&volume.join("github.com/acme/app/.git")),
        ],
        root,
    );
}

const OTHER_VOLUMES: [&str; 5] = ["zoekt-0-shared", "blobstore", "redis-cache", "grafana", "caddy"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_round_trip_and_failures() {
    let (src, dst) = tokio::join!(PgCluster::start(), PgCluster::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    tokio::join!(load_instance(&src), create_empty(&dst));
    let tmp = tempfile::tempdir().unwrap();
    make_gitserver(tmp.path());
    let redis = tmp.path().join("redis-store");
    std::fs::create_dir_all(&redis).unwrap();
    std::fs::write(redis.join("dump.rdb"), b"REDIS0009\xfa\x09redis-ver").unwrap();
    let prom = tmp.path().join("prometheus");
    std::fs::create_dir_all(prom.join("wal")).unwrap();
    std::fs::write(prom.join("wal/00000000"), vec![7u8; 4096]).unwrap();
    let repo = path(&tmp.path().join("repo")).to_string();
    let vol = |name: &str, p: &Path| format!("{name}={}", p.display());
    let mut volume_args = vec![
        "--volume".to_string(),
        vol("gitserver-0", &tmp.path().join("gitserver-0")),
        "--volume".into(),
        vol("redis-store", &redis),
        "--volume".into(),
        vol("prometheus-v2", &prom),
    ];
    for v in OTHER_VOLUMES {
        volume_args.extend(["--external".to_string(), v.to_string()]);
    }

    // A store that fails mid-pipeline (a database on a dead port): exit 1 naming it, no manifest.
    let mut args = strings(&["backup", "--to", &repo, "--deployment", "compose"]);
    args.extend(["--pgsql".into(), "postgres://postgres@127.0.0.1:1/sg".into()]);
    args.extend([
        "--external".into(),
        "codeintel-db".into(),
        "--external".into(),
        "codeinsights-db".into(),
    ]);
    args.extend(volume_args.clone());
    let out = run_async(ALL, args).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // pgsql and config (read from the same database) both fail their check; either is named.
    let first = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(
        first.starts_with("error: store ") && first.contains("127.0.0.1:1/sg"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // A volume directory that does not exist.
    let mut args = strings(&["backup", "--to", &repo, "--deployment", "compose"]);
    args.extend(db_args(&src));
    args.extend(volume_args.clone());
    args.extend(["--volume".into(), "gitserver-1=/nonexistent/gitserver-1".into()]);
    let out = run_async(ALL, args).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).lines().next().unwrap_or("").contains("gitserver-1"),
        "{}",
        stderr(&out)
    );
    // A database that is not Sourcegraph's fails inside the pipeline, after volumes were written.
    src.create_database("other").await.unwrap();
    src.batch_execute("other", "CREATE TABLE t (id int primary key)")
        .await
        .unwrap();
    let mut args = strings(&["backup", "--to", &repo, "--deployment", "compose"]);
    args.extend(["--pgsql".into(), src.url("other")]);
    args.extend(["--config-db".into(), src.url("sg")]);
    args.extend([
        "--codeintel".into(),
        src.url("codeintel"),
        "--codeinsights".into(),
        src.url("codeinsights"),
    ]);
    args.extend(volume_args.clone());
    let out = run_async(ALL, args).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).lines().next().unwrap_or("").contains("pgsql"),
        "{}",
        stderr(&out)
    );
    let out = run_async(ALL, strings(&["list", "--from", &repo, "--json"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout_json(&out)["backups"].as_array().unwrap().len(),
        0,
        "a failed backup is listed"
    );

    // The real thing.
    let mut args = strings(&["backup", "--to", &repo, "--deployment", "compose", "--json"]);
    args.extend(db_args(&src));
    args.extend(volume_args.clone());
    let out = run_async(ALL, args).await;
    assert_eq!(out.status.code(), Some(0));
    let summary = stdout_json(&out);
    let status = |store: &str| {
        summary["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["store"] == store)
            .map(|s| s["status"].clone())
    };
    for store in [
        "config",
        "pgsql",
        "codeintel-db",
        "codeinsights-db",
        "gitserver-0",
        "redis-store",
        "prometheus-v2",
    ] {
        assert_eq!(status(store), Some(Value::from("included")), "{store}");
    }
    assert_eq!(status("blobstore"), Some(Value::from("skipped")));

    let out = run_async(ALL, strings(&["verify", "--from", &repo])).await;
    assert_eq!(out.status.code(), Some(0));
    let out = run_async(ALL, strings(&["list", "--from", &repo, "--json"])).await;
    assert_eq!(stdout_json(&out)["backups"].as_array().unwrap().len(), 1);

    let restored = tmp.path().join("restored");
    let mut args = strings(&["restore", "--from", &repo, "--json"]);
    args.extend(db_args(&dst));
    for (name, _) in [("gitserver-0", ()), ("redis-store", ()), ("prometheus-v2", ())] {
        args.extend(["--volume".into(), vol(name, &restored.join(name))]);
    }
    let out = run_async(ALL, args).await;
    assert_eq!(out.status.code(), Some(0));
    assert_same_instance(&src, &dst).await;
    assert_eq!(
        tree(&tmp.path().join("gitserver-0")),
        tree(&restored.join("gitserver-0"))
    );
    assert_eq!(tree(&redis), tree(&restored.join("redis-store")));
    assert_eq!(tree(&prom), tree(&restored.join("prometheus-v2")));
    git(
        &["fsck", "--strict"],
        &restored.join("gitserver-0/github.com/acme/app/.git"),
    );
}

// ---- issue 10: the command line takes what the user gives ------------------

fn rows(summary: &Value) -> &Vec<Value> {
    summary["stores"].as_array().expect("stores")
}

/// The summary row of `store` (of kind `kind` when given: volumes and databases share names).
fn row<'a>(summary: &'a Value, store: &str) -> &'a Value {
    rows(summary)
        .iter()
        .find(|s| s["store"] == store && s["kind"] != "volume")
        .unwrap_or_else(|| panic!("no row {store} in {summary}"))
}

fn status_and_reason(summary: &Value, store: &str) -> (String, String) {
    let r = row(summary, store);
    (
        r["status"].as_str().unwrap_or_default().to_string(),
        r["reason"].as_str().unwrap_or_default().to_string(),
    )
}

fn manifest(repo: &Path, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo.join(id).join("manifest.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backs_up_the_databases_it_is_given() {
    let (src, dst) = tokio::join!(PgCluster::start(), PgCluster::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    tokio::join!(load_instance(&src), create_empty(&dst));
    let tmp = tempfile::tempdir().unwrap();
    // --to a directory that does not exist yet, two levels deep: it is created.
    let repo_dir = tmp.path().join("not/yet");
    let repo = path(&repo_dir).to_string();

    // Only the main database: the other two are left out, with their reason.
    let out = run_async(
        POSTGRES,
        strings(&["backup", "--to", &repo, "--json", "--pgsql", &src.url("sg")]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stdout_json(&out);
    assert_eq!(status_and_reason(&summary, "pgsql").0, "included");
    assert_eq!(status_and_reason(&summary, "config").0, "included");
    for db in ["codeintel-db", "codeinsights-db"] {
        let (status, reason) = status_and_reason(&summary, db);
        assert_eq!(status, "skipped", "{db}");
        assert!(reason.starts_with("not given"), "{db}: {reason}");
    }
    assert!(
        status_and_reason(&summary, "codeintel-db")
            .1
            .contains("code graph data is not recreatable"),
        "the reason says what is lost"
    );
    // ... and in the manifest.
    let id = summary["backup_id"].as_str().unwrap().to_string();
    let m = manifest(&repo_dir, &id);
    let planned = m["plan"]["stores"].as_array().unwrap();
    for db in ["codeintel-db", "codeinsights-db"] {
        let s = planned.iter().find(|s| s["id"] == db).unwrap();
        assert_eq!(s["decision"], "skipped", "{s}");
        assert!(s["reason"].as_str().unwrap().starts_with("not given"), "{s}");
    }
    assert_eq!(
        m["stores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["config", "pgsql"]
    );

    // Restored: the configuration is not re-applied on top of the restored main database.
    let out = run_async(
        POSTGRES,
        strings(&["restore", "--from", &repo, "--json", "--pgsql", &dst.url("sg")]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let restored = stdout_json(&out);
    assert_eq!(status_and_reason(&restored, "pgsql").0, "restored");
    let (status, reason) = status_and_reason(&restored, "config");
    assert_eq!(status, "not-restored");
    assert!(reason.contains("already holds it"), "{reason}");
    let report = oracle::compare(&src, "sg", &dst, "sg").await.unwrap();
    assert!(report.is_identical(), "{:?}", report.differences());

    // Again into the now non-empty database: the message names the flag, not the library field.
    let out = run_async(
        POSTGRES,
        strings(&["restore", "--from", &repo, "--pgsql", &dst.url("sg")]),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`--clean`"), "{}", stderr(&out));

    // Only codeintel: the main database is not recreatable, so leaving it out is an
    // error that names the flags to add.
    let out = run_async(
        POSTGRES,
        strings(&["backup", "--to", &repo, "--codeintel", &src.url("codeintel")]),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--pgsql URL") && err.contains("--external pgsql"),
        "{err}"
    );
    // With --external pgsql, the configuration (which lives in pgsql) is left out too.
    let out = run_async(
        POSTGRES,
        strings(&[
            "backup",
            "--to",
            &repo,
            "--codeintel",
            &src.url("codeintel"),
            "--external",
            "pgsql",
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |store: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{store} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("codeintel-db").ends_with("included"), "{text}");
    assert!(line("config").contains("skipped: not given"), "{text}");
    assert!(line("codeinsights-db").contains("skipped: not given"), "{text}");
    assert!(line("pgsql").contains("skipped: marked external"), "{text}");
    // Nothing left: a usage error.
    let out = run_async(
        POSTGRES,
        strings(&["backup", "--to", &repo, "--external", "pgsql"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nothing to back up"), "{}", stderr(&out));

    // Not a Sourcegraph database: the message names the flag.
    src.create_database("other").await.unwrap();
    src.batch_execute("other", "CREATE TABLE t (id int primary key)")
        .await
        .unwrap();
    let out = run_async(
        POSTGRES,
        strings(&[
            "backup",
            "--to",
            &repo,
            "--pgsql",
            &src.url("other"),
            "--external",
            "config",
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`--allow-generic`"), "{}", stderr(&out));
}

/// The newest site configuration of `db`.
async fn latest_site_config(cluster: &PgCluster, db: &str) -> String {
    let client = cluster.connect(db).await.unwrap();
    let row = client
        .query_one(
            "SELECT contents FROM critical_and_site_config WHERE type = 'site' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restore_leaves_the_configuration_to_the_dump() {
    let (src, dst) = tokio::join!(PgCluster::start(), PgCluster::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    tokio::join!(load_instance(&src), create_empty(&dst));
    // A stored site configuration that does not parse, as a real instance can hold.
    src.batch_execute(
        "sg",
        "SELECT set_config('app.current_tenant', '1', false);
         INSERT INTO critical_and_site_config (type, contents) VALUES ('site', '{\"externalURL\": ')",
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo = path(tmp.path()).to_string();
    let mut args = strings(&["backup", "--to", &repo, "--json"]);
    args.extend(db_args(&src));
    let out = run_async(POSTGRES, args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout_json(&out)["backup_id"].as_str().unwrap().to_string();

    // The dump holds the configuration: restoring the databases does not re-apply it.
    let mut args = strings(&["restore", "--from", &repo, "--json"]);
    args.extend(db_args(&dst));
    let out = run_async(POSTGRES, args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stdout_json(&out);
    for db in ["pgsql", "codeintel-db", "codeinsights-db"] {
        assert_eq!(status_and_reason(&summary, db).0, "restored", "{db}");
    }
    let (status, reason) = status_and_reason(&summary, "config");
    assert_eq!(status, "not-restored");
    assert!(reason.contains("already holds it"), "{reason}");
    assert_same_instance(&src, &dst).await;

    // Configuration into another database, asked for with --config-db: it fails after
    // the databases are in. The summary shows both, and the error names the command
    // that re-runs only the configuration.
    for db in ["sg2", "codeintel2", "codeinsights2", "cfg"] {
        dst.create_database(db).await.unwrap();
    }
    dst.execute_sql_file("cfg", &fixture("frontend.sql"))
        .await
        .unwrap();
    let args = strings(&[
        "restore",
        "--from",
        &repo,
        "--json",
        "--pgsql",
        &dst.url("sg2"),
        "--codeintel",
        &dst.url("codeintel2"),
        "--codeinsights",
        &dst.url("codeinsights2"),
        "--config-db",
        &dst.url("cfg"),
    ]);
    let out = run_async(POSTGRES, args).await;
    assert_eq!(out.status.code(), Some(1));
    let summary = stdout_json(&out);
    assert_eq!(summary["ok"], false);
    for db in ["pgsql", "codeintel-db", "codeinsights-db"] {
        assert_eq!(status_and_reason(&summary, db).0, "restored", "{db}");
    }
    let (status, reason) = status_and_reason(&summary, "config");
    assert_eq!(status, "failed");
    assert!(reason.contains("site configuration"), "{reason}");
    let rerun = format!("sourcegraph-backup restore --from {repo} --backup {id} --config-db URL");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains(&rerun), "{error}");
    assert!(stderr(&out).contains(&rerun), "{}", stderr(&out));
    for db in ["sg", "codeintel", "codeinsights"] {
        let report = oracle::compare(&src, db, &dst, &format!("{db}2")).await.unwrap();
        assert!(report.is_identical(), "{db}: {:?}", report.differences());
    }

    // A failure that can be fixed: a --config-db without Sourcegraph's tables. After
    // loading them, the command the error names restores the configuration alone.
    src.batch_execute(
        "sg",
        "SELECT set_config('app.current_tenant', '1', false);
         INSERT INTO critical_and_site_config (type, contents) VALUES ('site', '{\"externalURL\": \"https://fixed.example.com\"}')",
    )
    .await
    .unwrap();
    let out = run_async(
        POSTGRES,
        strings(&["backup", "--to", &repo, "--json", "--pgsql", &src.url("sg")]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout_json(&out)["backup_id"].as_str().unwrap().to_string();
    for db in ["sg3", "later"] {
        dst.create_database(db).await.unwrap();
    }
    let out = run_async(
        POSTGRES,
        strings(&[
            "restore",
            "--from",
            &repo,
            "--backup",
            &id,
            "--pgsql",
            &dst.url("sg3"),
            "--config-db",
            &dst.url("later"),
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("pgsql ") && l.ends_with("restored")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("config ") && l.contains("FAILED")),
        "{text}"
    );
    let err = stderr(&out);
    let command = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .and_then(|l| l.split_once("sourcegraph-backup restore "))
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_else(|| panic!("no re-run command in {err}"));
    assert_eq!(command, format!("--from {repo} --backup {id} --config-db URL"));
    dst.execute_sql_file("later", &fixture("frontend.sql"))
        .await
        .unwrap();
    let mut args = strings(&["restore"]);
    args.extend(command.split(' ').map(|w| {
        if w == "URL" {
            dst.url("later")
        } else {
            w.to_string()
        }
    }));
    args.push("--json".into());
    let out = run_async(CONFIG, args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(status_and_reason(&stdout_json(&out), "config").0, "restored");
    assert_eq!(
        latest_site_config(&dst, "later").await,
        latest_site_config(&src, "sg").await
    );

    // A dry run still shows what the configuration of the --pgsql target would become,
    // and changes nothing.
    let out = run_async(
        POSTGRES,
        strings(&[
            "restore",
            "--from",
            &repo,
            "--backup",
            &id,
            "--dry-run",
            "--json",
            "--pgsql",
            &dst.url("sg"),
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stdout_json(&out);
    assert_eq!(summary["dry_run"], true);
    assert_eq!(status_and_reason(&summary, "config").0, "would-restore");
    assert_eq!(status_and_reason(&summary, "pgsql").0, "not-restored");
    let diffs = row(&summary, "config")["details"]["diffs"].as_array().unwrap();
    assert!(
        diffs
            .iter()
            .any(|d| d["diff"].as_str().unwrap().contains("fixed.example.com")),
        "{diffs:?}"
    );
    assert_eq!(
        latest_site_config(&dst, "sg").await,
        "{\"externalURL\": ",
        "the dry run changed nothing"
    );
}

#[test]
fn all_backs_up_volumes_without_databases() {
    let tmp = tempfile::tempdir().unwrap();
    make_gitserver(tmp.path());
    let repo = path(&tmp.path().join("backups/new")).to_string();
    let mut args = strings(&[
        "backup",
        "--to",
        &repo,
        "--json",
        "--deployment",
        "compose",
        "--external",
        "pgsql",
        "--volume",
    ]);
    args.push(format!(
        "gitserver-0={}",
        tmp.path().join("gitserver-0").display()
    ));
    for v in OTHER_VOLUMES.iter().chain(&["redis-store", "prometheus-v2"]) {
        args.extend(["--external".to_string(), v.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(ALL, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stdout_json(&out);
    let volume = rows(&summary)
        .iter()
        .find(|s| s["store"] == "gitserver-0")
        .unwrap();
    assert_eq!(volume["status"], "included");
    for store in ["config", "codeintel-db", "codeinsights-db"] {
        let (status, reason) = status_and_reason(&summary, store);
        assert_eq!(status, "skipped", "{store}");
        assert!(reason.starts_with("not given"), "{store}: {reason}");
    }

    // Restoring into a directory that is not empty: the message names the flag.
    let target = tmp.path().join("restored/gitserver-0");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("stray"), b"x").unwrap();
    let spec = format!("gitserver-0={}", target.display());
    let out = run(ALL, &["restore", "--from", &repo, "--volume", &spec]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`--clean`"), "{}", stderr(&out));
    let out = run(ALL, &["restore", "--from", &repo, "--volume", &spec, "--clean"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    git(&["fsck", "--strict"], &target.join("github.com/acme/app/.git"));
}

#[test]
fn restore_force_needs_clean() {
    // --force only means something with --clean.
    let out = sg(&["restore", "--from", "x", "--force"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--clean"), "{}", stderr(&out));
}
