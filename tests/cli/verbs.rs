//! Issue 12's verbs and streams: `plan`, `--progress json`, logs through `RUST_LOG`, the
//! deployment from `DEPLOY_TYPE`; `compare` and `forget`.

use std::path::Path;

use serde_json::Value;

use super::{path, run_with, sg, stderr, stdout_json, strings, write_config_files};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The row of `store` (not a volume of the same name, unless `volume`) in a plan report.
fn plan_row<'a>(report: &'a Value, store: &str, volume: bool) -> &'a Value {
    report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["store"] == store && (r["kind"] == "volume") == volume)
        .unwrap_or_else(|| panic!("no row {store} in {report}"))
}

/// The ids of the stores a plan report or a backup summary includes, sorted.
fn included(report: &Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[key] == "included")
        .map(|r| r["store"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Every Compose volume but gitserver-0 and prometheus-v2, as `--external` flags.
fn other_volumes_external() -> Vec<String> {
    [
        "zoekt-0-shared",
        "blobstore",
        "redis-cache",
        "redis-store",
        "grafana",
        "caddy",
    ]
    .iter()
    .flat_map(|v| ["--external".to_string(), v.to_string()])
    .collect()
}

#[test]
fn plan_says_what_and_why_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // A database on a closed port with a password: the plan connects to nothing, so it
    // neither fails nor waits, and prints no secret.
    let dead = "postgres://sg:SECRET1@127.0.0.1:1/sg";
    let gitserver = tmp.path().join("gitserver-0");
    let mut args = strings(&[
        "plan",
        "--option",
        "all",
        "--pgsql",
        dead,
        "--volume",
        &format!("gitserver-0={}", gitserver.display()),
        "--volume",
        &format!("prometheus-v2={}", tmp.path().join("prom").display()),
        "--json",
    ]);
    args.extend(other_volumes_external());
    let out = run_with(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("SECRET1") && !stderr(&out).contains("SECRET1"));
    let report = stdout_json(&out);
    assert_eq!(report["command"], "plan");
    assert_eq!(report["ok"], true);
    assert_eq!(report["option"], "all-data");
    assert_eq!(report["deployment"], "docker-compose");
    assert_eq!(plan_row(&report, "pgsql", false)["decision"], "included");
    assert!(plan_row(&report, "pgsql", false)["location"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1:1"));
    assert_eq!(plan_row(&report, "config", false)["decision"], "included");
    for db in ["codeintel-db", "codeinsights-db"] {
        let row = plan_row(&report, db, false);
        assert_eq!(row["decision"], "skipped", "{db}");
        assert!(row["reason"].as_str().unwrap().starts_with("not given"), "{row}");
    }
    assert_eq!(plan_row(&report, "gitserver-0", true)["decision"], "included");
    let blob = plan_row(&report, "blobstore", true);
    assert_eq!(blob["decision"], "skipped");
    assert!(blob["reason"].as_str().unwrap().contains("external"), "{blob}");
    assert_eq!(plan_row(&report, "pgsql", true)["decision"], "carried");
    // The catalog: every row with a decision and a reason.
    let items = report["items"].as_array().unwrap();
    let item = |id: &str| items.iter().find(|i| i["catalog_id"] == id).unwrap().clone();
    assert_eq!(item("site-configuration")["decision"], "included");
    assert_eq!(item("code-graph-data")["decision"], "skipped");
    assert!(item("code-graph-data")["reason"]
        .as_str()
        .unwrap()
        .contains("codeintel-db"));
    assert!(!gitserver.exists(), "plan created a volume directory");

    // The same as a table.
    let table: Vec<String> = args.iter().filter(|a| *a != "--json").cloned().collect();
    let out = run_with(&table, &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("codeintel-db ") && l.contains("skipped: not given")),
        "{text}"
    );
    assert!(text.contains("Site configuration"), "{text}");
    assert!(text.ends_with("the backup can run as described\n"), "{text}");

    // --skip-recreatable: the git repositories are left out, the metrics are not.
    let mut skip = args.clone();
    skip.push("--skip-recreatable".into());
    let report = stdout_json(&run_with(&skip, &[]));
    let git = plan_row(&report, "gitserver-0", true);
    assert_eq!(git["decision"], "skipped");
    assert!(git["reason"].as_str().unwrap().contains("recreatable"), "{git}");
    assert_eq!(plan_row(&report, "prometheus-v2", true)["decision"], "included");
}

#[test]
fn plan_lists_what_would_refuse_the_backup() {
    let out = sg(&[
        "plan",
        "--option",
        "postgres",
        "--codeintel",
        "postgres://sg@127.0.0.1:1/sg",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let problem = text
        .lines()
        .find(|l| l.starts_with("problem: "))
        .unwrap_or_else(|| panic!("no problem line in {text}"));
    assert!(
        problem.contains("--pgsql URL") && problem.contains("--external pgsql"),
        "{problem}"
    );
    let out = sg(&[
        "plan",
        "--option",
        "all",
        "--external",
        "pgsql",
        "--volumes-root",
        "/nonexistent",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout_json(&out);
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["problem"] == "volume-without-directory" && p["volume"] == "gitserver-0"),
        "{report}"
    );
}

#[test]
fn plan_agrees_with_the_backup_it_describes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    write_config_files(&input);
    let gitserver = tmp.path().join("gitserver-0/github.com/acme/app.git");
    std::fs::create_dir_all(&gitserver).unwrap();
    std::fs::write(gitserver.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    let prom = tmp.path().join("prom");
    std::fs::create_dir_all(prom.join("wal")).unwrap();
    std::fs::write(prom.join("wal/00000000"), vec![7u8; 4096]).unwrap();
    let mut source = strings(&[
        "--option",
        "all",
        "--external",
        "pgsql",
        "--config-files",
        path(&input),
        "--volume",
        &format!("gitserver-0={}", tmp.path().join("gitserver-0").display()),
        "--volume",
        &format!("prometheus-v2={}", prom.display()),
        "--json",
    ]);
    source.extend(other_volumes_external());
    let plan = stdout_json(&run_with(&[strings(&["plan"]), source.clone()].concat(), &[]));
    let repo = tmp.path().join("repo");
    let backup = run_with(&[strings(&["backup", "--to", path(&repo)]), source].concat(), &[]);
    assert_eq!(backup.status.code(), Some(0), "{}", stderr(&backup));
    let summary = stdout_json(&backup);
    assert_eq!(included(&plan, "decision"), included(&summary, "status"));
    assert_eq!(
        included(&plan, "decision"),
        ["config", "gitserver-0", "prometheus-v2"]
    );
}

#[test]
fn deployment_comes_from_deploy_type_unless_given() {
    let args = strings(&["plan", "--option", "all", "--external", "pgsql", "--json"]);
    let out = run_with(&args, &[("DEPLOY_TYPE", "helm")]);
    let report = stdout_json(&out);
    assert_eq!(report["deployment"], "kubernetes", "{report}");
    assert!(report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["store"] == "indexed-search"));
    let mut given = args.clone();
    given.extend(strings(&["--deployment", "compose"]));
    let report = stdout_json(&run_with(&given, &[("DEPLOY_TYPE", "kubernetes")]));
    assert_eq!(report["deployment"], "docker-compose");
    // A value Sourcegraph uses that is neither: a usage error naming what is expected.
    let out = run_with(&args, &[("DEPLOY_TYPE", "pure-docker")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("compose or kubernetes"), "{}", stderr(&out));
}

/// A configuration backup of files into `repo`, with extra arguments and environment.
fn config_backup(input: &Path, repo: &Path, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut args = strings(&[
        "backup",
        "--option",
        "config",
        "--config-files",
        path(input),
        "--to",
        path(repo),
    ]);
    args.extend(strings(extra));
    run_with(&args, env)
}

#[test]
fn progress_json_streams_one_event_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    write_config_files(&input);
    let repo = tmp.path().join("repo");
    let out = config_backup(&input, &repo, &["--progress", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} is not one JSON event")))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"store-started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"store-finished"), "{kinds:?}");
    assert!(kinds.contains(&"bytes"), "{kinds:?}");
    assert!(events
        .iter()
        .all(|e| e["store"] == "config" && e["elapsed_seconds"].is_number()));
    assert!(events.last().unwrap()["error"].is_null());
    // The summary is still the table on stdout.
    assert!(stdout(&out).starts_with("backup "), "{}", stdout(&out));

    let target = tmp.path().join("target");
    let out = sg(&[
        "restore",
        "--from",
        path(&repo),
        "--config-files",
        path(&target),
        "--progress",
        "json",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok_and(|e| e["event"].is_string())),
        "{err}"
    );
    assert!(err.contains("\"store-finished\""), "{err}");
    assert_eq!(stdout_json(&out)["command"], "restore");

    // --progress none: nothing on stderr.
    let out = config_backup(&input, &repo, &["--progress", "none"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn logs_follow_rust_log_and_hold_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    write_config_files(&input);
    let repo = tmp.path().join("repo");
    let out = config_backup(&input, &repo, &["--progress", "none"], &[("RUST_LOG", "info")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("INFO") && l.contains("planned the backup")),
        "{err}"
    );
    assert!(err.contains("backing up"), "{err}");
    // Without RUST_LOG: no log line.
    let out = config_backup(&input, &repo, &["--progress", "none"], &[]);
    assert!(!stderr(&out).contains("planned the backup"), "{}", stderr(&out));
    // A secret in what is logged is masked, at every level.
    let out = run_with(
        &strings(&[
            "backup",
            "--option",
            "config",
            "--config-db",
            "postgres://postgres:SECRET2@127.0.0.1:1/sg",
            "--to",
            path(&repo),
            "--progress",
            "none",
        ]),
        &[("RUST_LOG", "trace")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("planned the backup"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("SECRET2"), "{}", stderr(&out));
}

/// An incomplete backup no running backup owns, last written three hours ago.
fn make_abandoned(repo: &Path, id: &str) {
    let dir = repo.join(id).join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("site.jsonc.zst"), b"partial").unwrap();
}

/// The ids of the complete backups `list --json` shows, newest first.
fn complete_backups(repo: &Path) -> Vec<String> {
    let list = stdout_json(&sg(&["list", "--from", path(repo), "--json"]));
    list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forget_keeps_what_the_policy_says_and_never_the_last_backup_unless_told() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    write_config_files(&input);
    let repo = tmp.path().join("repo");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = config_backup(&input, &repo, &["--json", "--progress", "none"], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        ids.push(stdout_json(&out)["backup_id"].as_str().unwrap().to_string());
    }
    ids.reverse(); // newest first, as list and forget show them
    assert_eq!(complete_backups(&repo), ids);
    make_abandoned(&repo, "20250101T000000.000Z-bbbb");

    // A dry run decides and removes nothing.
    let out = sg(&[
        "forget",
        "--from",
        path(&repo),
        "--keep-last",
        "1",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["command"], "forget");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["kept"][0]["backup"]["id"], ids[0].as_str());
    assert_eq!(report["kept"][0]["reasons"][0], "last");
    let removed: Vec<&str> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["backup"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [ids[1].as_str(), ids[2].as_str()]);
    assert_eq!(report["untouched"][0]["id"], "20250101T000000.000Z-bbbb");
    assert_eq!(complete_backups(&repo), ids, "the dry run removed something");

    // For real, with a daily rule beside: all three are of one day, so one is kept.
    let out = sg(&[
        "forget",
        "--from",
        path(&repo),
        "--keep-last",
        "1",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("removed {}", ids[1])), "{text}");
    assert!(text.contains(&format!("removed {}", ids[2])), "{text}");
    assert!(text.contains(&format!("keep {}", ids[0])), "{text}");
    assert!(text.contains("left alone 20250101T000000.000Z-bbbb"), "{text}");
    assert_eq!(complete_backups(&repo), [ids[0].clone()]);
    assert!(!repo.join(&ids[1]).exists() && !repo.join(&ids[2]).exists());
    assert!(
        repo.join("20250101T000000.000Z-bbbb").exists(),
        "forget touched an incomplete backup"
    );

    // The only complete backup stays, whatever the policy, unless told.
    let out = sg(&["forget", "--from", path(&repo), "--keep-last", "0", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report = stdout_json(&out);
    assert_eq!(report["kept"][0]["reasons"][0], "last_complete");
    assert_eq!(complete_backups(&repo), [ids[0].clone()]);
    let out = sg(&[
        "forget",
        "--from",
        path(&repo),
        "--keep-last",
        "0",
        "--allow-removing-all",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains(&format!("removed {}", ids[0])));
    assert!(complete_backups(&repo).is_empty());
}

#[test]
fn compare_refuses_unpaired_databases() {
    for (args, expected) in [
        (&["compare"][..], "give the databases to compare"),
        (
            &["compare", "--pgsql", "postgres://a@127.0.0.1:1/a"],
            "--pgsql needs --with URL",
        ),
        (
            &["compare", "--codeintel-with", "postgres://a@127.0.0.1:1/a"],
            "--codeintel-with needs --codeintel URL",
        ),
        (
            &[
                "compare",
                "--codeintel",
                "postgres://a@127.0.0.1:1/a",
                "--codeinsights",
                "postgres://a@127.0.0.1:1/b",
                "--with",
                "postgres://a@127.0.0.1:1/c",
            ],
            "--codeintel needs --codeintel-with URL",
        ),
    ] {
        let out = sg(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    // One database with --with: compared (here: a closed port, so it fails, exit 1, naming it,
    // no password shown).
    let out = sg(&[
        "compare",
        "--codeinsights",
        "postgres://a:SECRET3@127.0.0.1:1/a",
        "--with",
        "postgres://a:SECRET3@127.0.0.1:1/b",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: comparing codeinsights-db"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("SECRET3"));
}

#[test]
fn volumes_and_further_shards_are_found_under_the_volumes_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("volumes");
    for name in ["gitserver-0", "gitserver-1", "zoekt-0-shared", "prometheus-v2"] {
        let data = root.join(format!("docker-compose_{name}/_data"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("file"), name).unwrap();
    }
    let args = strings(&[
        "--option",
        "all",
        "--external",
        "pgsql",
        "--external",
        "config",
        "--external",
        "blobstore",
        "--external",
        "redis-cache",
        "--external",
        "redis-store",
        "--external",
        "grafana",
        "--external",
        "caddy",
        "--volumes-root",
        path(&root),
        "--json",
    ]);
    let out = run_with(&[strings(&["plan"]), args.clone()].concat(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = stdout_json(&out);
    assert_eq!(
        included(&plan, "decision"),
        ["gitserver-0", "gitserver-1", "prometheus-v2", "zoekt-0-shared"]
    );
    assert!(plan_row(&plan, "gitserver-1", true)["location"]
        .as_str()
        .unwrap()
        .ends_with("docker-compose_gitserver-1/_data"));
    // The backup holds the shard, and --skip-recreatable leaves it out with its kind.
    let repo = tmp.path().join("repo");
    let out = run_with(
        &[strings(&["backup", "--to", path(&repo)]), args.clone()].concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        included(&stdout_json(&out), "status"),
        included(&plan, "decision")
    );
    let mut skip = [strings(&["plan"]), args].concat();
    skip.push("--skip-recreatable".into());
    let plan = stdout_json(&run_with(&skip, &[]));
    assert_eq!(included(&plan, "decision"), ["prometheus-v2"]);
}
