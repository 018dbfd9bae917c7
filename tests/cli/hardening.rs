//! Issue 11 on the command line (and issue 10's role map): restores that map roles, `list`
//! showing every backup prefix, `clean`, backups interrupted by a signal, messages
//! (`--dry-run`, verify's OS errors, help), and secrets that must never be printed or stored.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sourcegraph_backup_testkit::PgCluster;

use super::{
    binary, path, run, run_async, run_with, stderr, stdout_json, strings, with_option, write_config_files,
    ALL, CONFIG, POSTGRES,
};

// ---- helpers ----------------------------------------------------------------

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the command with extra environment variables (and without PGPASSWORD); a `backup`
/// with `--option OPTION`.
fn run_env(option: &str, args: &[String], env: &[(&str, &str)]) -> Output {
    run_with(&with_option(option, args), env)
}

/// One value of a query's first row and column, as text.
async fn query_text(cluster: &PgCluster, db: &str, sql: &str) -> String {
    let client = cluster.connect(db).await.unwrap();
    let row = client.query_one(sql, &[]).await.unwrap();
    row.get::<_, String>(0)
}

/// Every file under `root` (recursively), with its path.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Sets the modification time of `file` to `ago` before now.
fn age_file(file: &Path, ago: Duration) {
    let f = std::fs::File::options().write(true).open(file).unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

/// A config-only backup of files into `repo`; returns its id.
fn config_backup(input: &Path, repo: &Path) -> String {
    write_config_files(input);
    let out = run(
        CONFIG,
        &[
            "backup",
            "--config-files",
            path(input),
            "--to",
            path(repo),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout_json(&out)["backup_id"].as_str().unwrap().to_string()
}

// ---- 1. role map, owners, grants --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_maps_roles_and_refuses_missing_ones() {
    let (src, dst) = tokio::join!(PgCluster::start(), PgCluster::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    src.batch_execute(
        "postgres",
        "CREATE ROLE some_role NOLOGIN; CREATE ROLE reader NOLOGIN; CREATE ROLE app_owner NOLOGIN",
    )
    .await
    .unwrap();
    src.create_database("app").await.unwrap();
    src.batch_execute(
        "app",
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t SELECT g, 'row ' || g FROM generate_series(1, 100) g;
         ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
         CREATE POLICY p ON public.t TO some_role USING (true);
         GRANT SELECT ON public.t TO reader;
         ALTER TABLE public.t OWNER TO app_owner;",
    )
    .await
    .unwrap();
    dst.batch_execute("postgres", "CREATE ROLE mapped NOLOGIN")
        .await
        .unwrap();
    for db in ["plain", "granted", "owned"] {
        dst.create_database(db).await.unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = path(tmp.path()).to_string();
    let out = run_async(
        POSTGRES,
        strings(&[
            "backup",
            "--to",
            &repo,
            "--json",
            "--pgsql",
            &src.url("app"),
            "--allow-generic",
            "--external",
            "config",
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let restore = |example: &'static str, db: &str, extra: &[&str]| {
        let mut args = strings(&["restore", "--from", &repo, "--pgsql", &dst.url(db)]);
        args.extend(strings(extra));
        run_async(example, args)
    };
    let table_count = |db: &'static str| {
        let dst = &dst;
        async move {
            query_text(
                dst,
                db,
                "SELECT count(*)::text FROM pg_class WHERE relname = 't' AND relkind = 'r'",
            )
            .await
        }
    };

    // The policy names a role the target lacks: refused before anything is written, naming
    // the role and the flag that maps it; both programs.
    for example in [POSTGRES, ALL] {
        let out = restore(example, "plain", &[]).await;
        assert_eq!(out.status.code(), Some(1), "{example}");
        let err = stderr(&out);
        assert!(
            err.contains("role some_role does not exist on the target"),
            "{example}: {err}"
        );
        assert!(err.contains("--role-map some_role="), "{example}: {err}");
        assert_eq!(table_count("plain").await, "0", "nothing was written");
    }

    // Mapped to a role that exists: restored; the policy names it, the connecting role owns
    // everything, no grant is restored.
    let out = restore(POSTGRES, "plain", &["--role-map", "some_role=mapped", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        query_text(
            &dst,
            "plain",
            "SELECT roles::text FROM pg_policies WHERE tablename = 't'"
        )
        .await,
        "{mapped}"
    );
    assert_eq!(
        query_text(
            &dst,
            "plain",
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 't'"
        )
        .await,
        dst.superuser()
    );
    assert_eq!(
        query_text(
            &dst,
            "plain",
            "SELECT (relacl IS NULL)::text FROM pg_class WHERE oid = 'public.t'::regclass"
        )
        .await,
        "true"
    );
    assert_eq!(
        query_text(&dst, "plain", "SELECT count(*)::text FROM public.t").await,
        "100"
    );

    // --grants: the grant's role must exist or be mapped too.
    let out = restore(ALL, "granted", &["--grants", "--role-map", "some_role=mapped"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("role reader does not exist"),
        "{}",
        stderr(&out)
    );
    assert_eq!(table_count("granted").await, "0");
    let out = restore(
        ALL,
        "granted",
        &[
            "--grants",
            "--role-map",
            "some_role=mapped",
            "--role-map",
            "reader=mapped",
            "--role-map",
            "app_owner=mapped",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        query_text(
            &dst,
            "granted",
            "SELECT has_table_privilege('mapped', 'public.t', 'SELECT')::text"
        )
        .await,
        "true"
    );

    // --owners: the source's owner, through the map.
    let out = restore(POSTGRES, "owned", &["--owners", "--role-map", "some_role=mapped"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("role app_owner does not exist"),
        "{}",
        stderr(&out)
    );
    assert_eq!(table_count("owned").await, "0");
    let out = restore(
        POSTGRES,
        "owned",
        &[
            "--owners",
            "--role-map",
            "some_role=mapped",
            "--role-map",
            "app_owner=mapped",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        query_text(
            &dst,
            "owned",
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 't'"
        )
        .await,
        "mapped"
    );

    // Usage mistakes: exit 2.
    let out = restore(POSTGRES, "owned", &["--role-map", "some_role"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = restore(POSTGRES, "owned", &["--role-map", "a=b", "--role-map", "a=c"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("maps role a twice"), "{}", stderr(&out));
}

// ---- 2 and 3. list shows every backup; clean ----------------------------------

const UNREADABLE: &str = "20991231T000000.000Z-aaaa";
const RUNNING: &str = "20260101T000000.000Z-cccc";
const ABANDONED: &str = "20250101T000000.000Z-bbbb";

/// A repository holding a complete backup (returned), a newer one whose manifest has a
/// format version from the future, a running one (live lease) and an abandoned one (no
/// lease, last written three hours ago, with a partial upload file).
fn listing_repo(root: &Path) -> (PathBuf, String) {
    let repo = root.join("repo");
    let good = config_backup(&root.join("in"), &repo);

    copy_dir(&repo.join(&good), &repo.join(UNREADABLE));
    let manifest = repo.join(UNREADABLE).join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["format_version"] = 2.into();
    m["backup_id"] = UNREADABLE.into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();

    let running = repo.join(RUNNING);
    std::fs::create_dir_all(running.join("config")).unwrap();
    std::fs::write(running.join("config/site.jsonc.zst"), b"partial").unwrap();
    let lease = serde_json::json!({
        "backup_id": RUNNING, "host": "backup-host", "pid": 4242,
        "renewed_at": chrono::Utc::now(),
        "expires_at": chrono::Utc::now() + chrono::Duration::hours(1),
    });
    std::fs::write(running.join("lease.json"), serde_json::to_vec(&lease).unwrap()).unwrap();

    make_abandoned(&repo, ABANDONED);
    (repo, good)
}

fn make_abandoned(repo: &Path, id: &str) {
    let dir = repo.join(id).join("pgsql/data");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["public.repo.0000.copy.zst", "public.repo.0001.copy.zst#1"] {
        std::fs::write(dir.join(f), b"partial").unwrap();
        age_file(&dir.join(f), Duration::from_secs(3 * 3600 + 60));
    }
}

#[test]
fn list_shows_every_backup_and_clean_removes_abandoned_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, good) = listing_repo(tmp.path());
    let repo = path(&repo_dir).to_string();

    let example = "list";
    let out = run(ALL, &["list", "--from", &repo]);
    assert_eq!(out.status.code(), Some(1), "{example}: something needs attention");
    let text = stdout(&out);
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{example}: no line for {id} in\n{text}"))
            .to_string()
    };
    assert!(line(&good).contains(" complete "), "{text}");
    let unreadable = line(UNREADABLE);
    assert!(
        unreadable.contains(" unreadable ") && unreadable.contains("format version 2"),
        "{text}"
    );
    let running = line(RUNNING);
    assert!(
        running.contains(" in progress ") && running.contains("backup-host") && running.contains("4242"),
        "{text}"
    );
    let abandoned = line(ABANDONED);
    assert!(
        abandoned.contains(" abandoned ") && abandoned.contains("3h 1m ago") && abandoned.contains("clean"),
        "{text}"
    );
    // Newest first.
    let order: Vec<usize> = [UNREADABLE, good.as_str(), RUNNING, ABANDONED]
        .iter()
        .map(|id| text.find(id).unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "{text}");

    let out = run(ALL, &["list", "--from", &repo, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let list = stdout_json(&out);
    assert_eq!(list["ok"], false, "{list}");
    assert_eq!(list["empty"], false);
    assert_eq!(list["backups"].as_array().unwrap().len(), 1);
    assert_eq!(list["backups"][0]["id"], good.as_str());
    assert_eq!(list["backups"][0]["state"], "complete");
    assert_eq!(list["unreadable"][0]["id"], UNREADABLE);
    assert!(list["unreadable"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("format version 2"));
    let incomplete = list["incomplete"].as_array().unwrap();
    let state = |id: &str| {
        incomplete
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {list}"))
            .clone()
    };
    assert_eq!(state(RUNNING)["state"], "in-progress");
    assert_eq!(state(RUNNING)["lease"]["pid"], 4242);
    assert_eq!(state(ABANDONED)["state"], "abandoned");
    assert!(state(ABANDONED)["age_seconds"].as_i64().unwrap() >= 3 * 3600);
    assert_eq!(list["problems"].as_array().unwrap().len(), 2, "{list}");

    // Without --backup, restore and verify refuse the unreadable newest backup, naming it
    // and the --backup to use instead.
    let restored = tmp.path().join("restored");
    for (example, args) in [
        (
            CONFIG,
            vec!["restore", "--from", &repo, "--config-files", path(&restored)],
        ),
        (POSTGRES, vec!["verify", "--from", &repo]),
        (ALL, vec!["verify", "--from", &repo, "--json"]),
    ] {
        let out = run(example, &args);
        assert_eq!(out.status.code(), Some(1), "{example} {args:?}");
        let err = stderr(&out);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ")
                && first.contains(UNREADABLE)
                && first.contains("--backup")
                && first.contains(&good),
            "{err}"
        );
        if args.contains(&"--json") {
            let j = stdout_json(&out);
            assert_eq!(j["ok"], false);
            assert!(j["error"].as_str().unwrap().contains(UNREADABLE));
        }
    }
    assert!(!restored.exists(), "nothing was restored");
    let out = run(CONFIG, &["verify", "--from", &repo, "--backup", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // clean: the abandoned backup (partial upload file included) goes; the running one, the
    // complete one and the unreadable one stay.
    let out = run(POSTGRES, &["clean", "--from", &repo]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("removed {ABANDONED}")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("left {RUNNING}")) && l.contains("in progress")),
        "{text}"
    );
    assert!(!repo_dir.join(ABANDONED).exists());
    for id in [RUNNING, good.as_str(), UNREADABLE] {
        assert!(repo_dir.join(id).exists(), "{id} was removed");
    }
    assert!(
        !files(&repo_dir).iter().any(|f| f.to_string_lossy().contains('#')),
        "a partial file is left"
    );

    // Still not ok: the unreadable backup. The running one alone is no problem.
    let out = run(ALL, &["list", "--from", &repo, "--json"]);
    let list = stdout_json(&out);
    assert_eq!(list["ok"], false);
    assert_eq!(list["incomplete"].as_array().unwrap().len(), 1);
    std::fs::remove_dir_all(repo_dir.join(UNREADABLE)).unwrap();
    let out = run(ALL, &["list", "--from", &repo, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["ok"], true);

    // clean --json.
    make_abandoned(&repo_dir, "20250202T000000.000Z-dddd");
    let out = run(CONFIG, &["clean", "--from", &repo, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let clean = stdout_json(&out);
    assert_eq!(clean["ok"], true);
    assert_eq!(clean["removed"][0]["id"], "20250202T000000.000Z-dddd");
    assert_eq!(clean["left"][0]["id"], RUNNING);
    assert_eq!(clean["left"][0]["state"], "in-progress");
    let out = run(ALL, &["clean", "--from", &repo]);
    assert!(
        stdout(&out).contains("0 removed, 1 left running"),
        "{}",
        stdout(&out)
    );

    // An empty repository is fine, and says so.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(POSTGRES, &["list", "--from", path(&empty)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("no backup under "), "{}", stdout(&out));
    let out = run(POSTGRES, &["list", "--from", path(&empty), "--json"]);
    let list = stdout_json(&out);
    assert_eq!(
        (list["ok"].clone(), list["empty"].clone()),
        (true.into(), true.into())
    );
    assert!(list["message"].as_str().unwrap().contains("no backup"));
}

// ---- 4. SIGINT / SIGTERM during a backup --------------------------------------

/// Runs an all-data backup of a volume too large to finish quickly (a sparse 2 GiB file
/// besides random data), sends `signal` once the store has started, and returns the exit
/// code, stdout and stderr.
fn interrupted_backup(volume: &Path, repo: &Path, signal: &str, json: bool) -> (Option<i32>, String, String) {
    let mut args = strings(&[
        "backup",
        "--option",
        "all",
        "--to",
        path(repo),
        "--deployment",
        "compose",
        "--external",
        "pgsql",
    ]);
    for v in [
        "zoekt-0-shared",
        "blobstore",
        "redis-cache",
        "grafana",
        "caddy",
        "redis-store",
        "prometheus-v2",
    ] {
        args.extend(["--external".to_string(), v.to_string()]);
    }
    args.extend([
        "--volume".to_string(),
        format!("gitserver-0={}", volume.display()),
    ]);
    if json {
        args.push("--json".into());
    }
    let mut child = Command::new(binary())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out_pipe = child.stdout.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut s = String::new();
        out_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut err = String::new();
    for line in err_lines.by_ref() {
        let line = line.unwrap();
        err.push_str(&line);
        err.push('\n');
        if line.contains("gitserver-0: backup started") {
            break;
        }
    }
    assert!(err.contains("backup started"), "no progress line: {err}");
    // Let data flow, so that uploads are in flight when the signal comes.
    std::thread::sleep(Duration::from_millis(700));
    let status = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for line in err_lines {
        err.push_str(&line.unwrap());
        err.push('\n');
    }
    let code = child.wait().unwrap().code();
    let out = stdout_reader.join().unwrap();
    eprintln!(
        "$ sourcegraph-backup {} (+ SIG{signal})\n-> {code:?}\n--- stdout\n{out}--- stderr\n{err}",
        args.join(" ")
    );
    (code, out, err)
}

#[test]
fn interrupted_backup_removes_everything_and_says_so_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("gitserver-0");
    std::fs::create_dir_all(volume.join("github.com/acme")).unwrap();
    // Sparse: 8 GiB of zeros read at page-cache speed still take seconds, so the signal
    // always comes mid-backup (2 GiB finished in 0.7 s on a warm cache).
    std::fs::File::create(volume.join("github.com/acme/huge.pack"))
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    let mut random = vec![0u8; 8 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut random)
        .unwrap();
    std::fs::write(volume.join("github.com/acme/random.pack"), &random).unwrap();

    for (signal, json) in [("INT", false), ("TERM", true)] {
        let repo = tmp.path().join(format!("repo-{signal}"));
        let (code, out, err) = interrupted_backup(&volume, &repo, signal, json);
        assert_eq!(code, Some(130), "SIG{signal}: {err}");
        let said: Vec<&str> = err.lines().filter(|l| l.starts_with("interrupted: ")).collect();
        assert_eq!(said.len(), 1, "{err}");
        assert!(
            said[0].starts_with("interrupted: backup ") && said[0].ends_with(" removed"),
            "{err}"
        );
        assert!(!err.lines().any(|l| l.starts_with("error")), "{err}");
        if json {
            let j: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                (j["ok"].clone(), j["interrupted"].clone()),
                (false.into(), true.into())
            );
        }
        // Nothing is left: no backup, no partial file.
        let left = files(&repo);
        assert!(left.is_empty(), "SIG{signal} left {left:?}");
        let subdirs = std::fs::read_dir(&repo).map(|d| d.count()).unwrap_or(0);
        assert_eq!(subdirs, 0, "SIG{signal}: a backup directory is left");
    }
}

// ---- 5. messages ----------------------------------------------------------------

#[test]
fn dry_run_says_would_restore_and_verify_keeps_the_os_error() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let id = config_backup(&tmp.path().join("in"), &repo);
    let target = tmp.path().join("target");

    // --dry-run: nothing is marked restored.
    let args = [
        "restore",
        "--from",
        path(&repo),
        "--config-files",
        path(&target),
        "--dry-run",
    ];
    let out = run(CONFIG, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let row = text.lines().find(|l| l.starts_with("config ")).unwrap();
    assert!(row.ends_with("would restore"), "{text}");
    assert!(text.contains("dry run"), "{text}");
    let out = run(CONFIG, &[&args[..], &["--json"]].concat());
    let summary = stdout_json(&out);
    assert_eq!(summary["stores"][0]["status"], "would-restore");
    assert!(!target.exists(), "the dry run wrote {}", target.display());

    // A read that fails with an OS error: verify shows it.
    let artifact = repo.join(&id).join("config/files/site-config.json");
    std::fs::remove_file(&artifact).unwrap();
    std::os::unix::fs::symlink("site-config.json", &artifact).unwrap();
    let out = run(CONFIG, &["verify", "--from", path(&repo)]);
    assert_eq!(out.status.code(), Some(1));
    let problem = stdout(&out)
        .lines()
        .find(|l| l.starts_with("problem: config/files/site-config.json"))
        .unwrap_or_default()
        .to_string();
    assert!(
        problem.contains("Too many levels of symbolic links"),
        "{}",
        stdout(&out)
    );

    // Permission denied (as root, which chmod does not stop, the check runs as nobody).
    std::fs::remove_file(&artifact).unwrap();
    std::fs::write(&artifact, b"{}").unwrap();
    std::fs::set_permissions(&artifact, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let out = run_unprivileged(tmp.path(), &repo, &["verify", "--from", path(&repo), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout_json(&out);
    let problem = report["problems"][0]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("Permission denied"), "{report}");

    // The help names the files a --config-files directory holds.
    for sub in ["backup", "restore", "plan"] {
        let text = stdout(&run(CONFIG, &[sub, "--help"]));
        assert!(text.contains("--config-files"), "{sub} --help");
        assert!(text.contains("site-config.json"), "{sub} --help");
        assert!(!text.contains("site.json"), "{sub} --help");
    }
}

#[test]
fn config_restore_into_existing_files_needs_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let repo = tmp.path().join("repo");
    config_backup(&input, &repo);
    let target = tmp.path().join("target");
    let args = ["restore", "--from", path(&repo), "--config-files", path(&target)];
    let out = run(CONFIG, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::write(target.join("site-config.json"), b"{\"changed\": true}").unwrap();
    let out = run(CONFIG, &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`--clean`"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(target.join("site-config.json")).unwrap(),
        b"{\"changed\": true}",
        "refused before writing"
    );
    let out = run(CONFIG, &[&args[..], &["--clean"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(target.join("site-config.json")).unwrap(),
        std::fs::read(input.join("site-config.json")).unwrap()
    );
    let text = stdout(&run(CONFIG, &["restore", "--help"]));
    assert!(text.contains("--clean"), "{text}");
}

/// Runs the command with `args` so that file permissions apply: as is when not root; as
/// root, as user nobody (65534), with `repo` given to nobody and the program copied where
/// nobody may run it.
fn run_unprivileged(scratch: &Path, repo: &Path, args: &[&str]) -> Output {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let probe = scratch.join("whoami");
    std::fs::write(&probe, b"").unwrap();
    if std::fs::metadata(&probe).unwrap().uid() != 0 {
        return run(CONFIG, args);
    }
    const NOBODY: u32 = 65534;
    for p in std::iter::once(repo.to_path_buf()).chain(walk_all(repo)) {
        std::os::unix::fs::lchown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // Let nobody reach the repository: the temporary directory is 0700.
    assert!(repo.starts_with(scratch));
    std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = scratch.join("sourcegraph-backup");
    std::fs::copy(binary(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&bin)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir(scratch)
        .output()
        .unwrap();
    eprintln!(
        "$ (as nobody) sourcegraph-backup {}\n-> {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every path under `root`, directories included.
fn walk_all(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

// ---- 6. secrets -------------------------------------------------------------------

/// Environments that make every cloud URL fail fast on a closed local port instead of
/// reaching a real service or an instance metadata endpoint.
const CLOUD_ENV: &[(&str, &str)] = &[
    ("AWS_ENDPOINT", "http://127.0.0.1:1"),
    ("AWS_ALLOW_HTTP", "true"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"),
    ("GOOGLE_BASE_URL", "http://127.0.0.1:1"),
    ("GOOGLE_SKIP_SIGNATURE", "true"),
    ("GOOGLE_ALLOW_HTTP", "true"),
    ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
    ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5a2V5a2V5"),
    ("AZURE_ENDPOINT", "http://127.0.0.1:1"),
    ("AZURE_ALLOW_HTTP", "true"),
];

/// `--external` for the main database and every Compose volume: an all-data backup that
/// needs no volume directory.
const ALL_VOLUMES_EXTERNAL: [&str; 18] = [
    "--external",
    "pgsql",
    "--external",
    "gitserver-0",
    "--external",
    "zoekt-0-shared",
    "--external",
    "blobstore",
    "--external",
    "redis-cache",
    "--external",
    "redis-store",
    "--external",
    "prometheus-v2",
    "--external",
    "grafana",
    "--external",
    "caddy",
];

const CLOUD_URLS: &[&str] = &[
    "s3://AK:SECRET1@bucket/p",
    "azure://acct.blob.core.windows.net/c/p?sig=SECRET2",
    "abfs://AK:SECRET3@x/p?sig=SECRET4",
    "gs://b/p?token=SECRET5",
    "az://c/p?sv=2024&sig=SECRET8",
];

/// The closed-port database: a URL with a password and a key=value string with one.
const DEAD_PG_URL: &str = "postgres://postgres:SECRET6@127.0.0.1:1/sg?sslmode=disable";
const DEAD_PG_KV: &str = "host=127.0.0.1 port=1 user=postgres password=SECRET7 dbname=sg";

fn assert_no_secret(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("SECRET"), "{what}: a secret in {stream}:\n{text}");
    }
}

/// Runs every command at once (they mostly wait on refused connections) and checks that no
/// output holds a secret.
fn run_all_without_secrets(commands: Vec<(&'static str, Vec<String>)>) {
    std::thread::scope(|scope| {
        for chunk in commands.chunks(24) {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(example, args)| {
                    scope.spawn(move || {
                        let out = run_env(example, args, CLOUD_ENV);
                        (format!("{example} {}", args.join(" ")), out)
                    })
                })
                .collect();
            for h in handles {
                let (what, out) = h.join().unwrap();
                assert_no_secret(&what, &out);
            }
        }
    });
}

#[test]
fn secrets_in_locations_never_reach_any_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let local = tmp.path().join("repo");
    config_backup(&input, &local);
    let (input, local, restored) = (
        path(&input).to_string(),
        path(&local).to_string(),
        path(&tmp.path().join("restored")).to_string(),
    );
    let mut commands: Vec<(&'static str, Vec<String>)> = Vec::new();
    for json in [false, true] {
        let mut add = |example: &'static str, args: &[&str]| {
            let mut args = strings(args);
            if json {
                args.push("--json".into());
            }
            commands.push((example, args));
        };
        for url in CLOUD_URLS {
            add(CONFIG, &["backup", "--config-files", &input, "--to", url]);
            add(POSTGRES, &["list", "--from", url]);
            add(ALL, &["verify", "--from", url]);
            add(CONFIG, &["restore", "--from", url, "--config-files", &restored]);
            add(POSTGRES, &["restore", "--from", url, "--pgsql", DEAD_PG_URL]);
            add(ALL, &["clean", "--from", url]);
        }
        for db in [DEAD_PG_URL, DEAD_PG_KV] {
            add(POSTGRES, &["backup", "--to", &local, "--pgsql", db]);
            add(
                POSTGRES,
                &["backup", "--to", &local, "--pgsql", db, "--codeintel", DEAD_PG_KV],
            );
            add(
                ALL,
                &[
                    &["backup", "--to", &local, "--codeintel", db, "--config-db", db][..],
                    &ALL_VOLUMES_EXTERNAL[..],
                ]
                .concat(),
            );
            add(CONFIG, &["backup", "--to", &local, "--config-db", db]);
            add(CONFIG, &["backup", "--to", CLOUD_URLS[0], "--config-db", db]);
            add(CONFIG, &["restore", "--from", &local, "--config-db", db]);
            add(
                CONFIG,
                &["restore", "--from", &local, "--config-db", db, "--dry-run"],
            );
            add(POSTGRES, &["restore", "--from", &local, "--codeintel", db]);
        }
        // Usage errors quote what they did not expect: a key=value string not quoted as one
        // argument, a URL without its flag.
        let unquoted: Vec<&str> = DEAD_PG_KV.split(' ').collect();
        add(
            POSTGRES,
            &[&["backup", "--to", &local, "--pgsql"][..], &unquoted[..]].concat(),
        );
        add(POSTGRES, &["backup", "--to", &local, DEAD_PG_URL]);
        add(CONFIG, &["restore", "--from", CLOUD_URLS[2], "--config-db"]);
    }
    run_all_without_secrets(commands);
}

/// Every file of a local repository, raw and (for artifacts) decompressed by the library.
async fn assert_repository_holds_no_secret(repo: &Path) {
    for f in files(repo) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("SECRET"),
            "a secret in {}",
            f.display()
        );
    }
    let repository = sourcegraph_backup::core::BackupRepository::local(repo).unwrap();
    for summary in repository.list().await.unwrap() {
        let backup = repository.open_backup(&summary.id).await.unwrap();
        for store in &backup.manifest().stores {
            for record in &store.artifacts {
                let data = backup.open_artifact(record).read_to_end().await.unwrap();
                let text = String::from_utf8_lossy(&data);
                for secret in ["SECRET6", "SECRET7"] {
                    assert!(!text.contains(secret), "{secret} in artifact {}", record.path);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_passwords_never_reach_output_manifest_or_artifacts() {
    let cluster = PgCluster::start().await.unwrap();
    super::load_instance(&cluster).await;
    for db in ["sg_r", "codeintel_r", "codeinsights_r"] {
        cluster.create_database(db).await.unwrap();
    }
    // Loopback connections are trusted: the passwords are accepted and never needed.
    let url = |db: &str| cluster.url(db).replacen("postgres@", "postgres:SECRET6@", 1);
    let kv = |db: &str| format!("{} password=SECRET7", cluster.key_value(db));
    assert!(url("sg").contains("SECRET6"));
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = path(&repo).to_string();

    for json in ["--json", "--jobs=2"] {
        let out = run_async(
            POSTGRES,
            strings(&[
                "backup",
                "--to",
                &r,
                json,
                "--pgsql",
                &url("sg"),
                "--codeintel",
                &kv("codeintel"),
                "--codeinsights",
                &url("codeinsights"),
            ]),
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_no_secret("backup", &out);
    }
    let out = run_async(
        CONFIG,
        strings(&[
            "backup",
            "--to",
            &r,
            "--config-db",
            &kv("sg"),
            "--carry-encrypted",
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_secret("config backup", &out);
    assert_repository_holds_no_secret(&repo).await;

    for args in [
        strings(&["list", "--from", &r]),
        strings(&["list", "--from", &r, "--json"]),
        strings(&["verify", "--from", &r]),
    ] {
        let out = run_async(POSTGRES, args).await;
        assert_no_secret("list/verify", &out);
    }
    let list = stdout_json(&run_async(POSTGRES, strings(&["list", "--from", &r, "--json"])).await);
    let id = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["option"] == "all-postgres")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (json, target) in [("--json", "_r"), ("--jobs=2", "_r")] {
        let out = run_async(
            POSTGRES,
            strings(&[
                "restore",
                "--from",
                &r,
                "--backup",
                &id,
                json,
                "--pgsql",
                &url(&format!("sg{target}")),
                "--codeintel",
                &kv(&format!("codeintel{target}")),
                "--codeinsights",
                &url(&format!("codeinsights{target}")),
                "--clean",
            ]),
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_no_secret("restore", &out);
    }
    // The configuration alone, as a dry run into the restored database.
    let out = run_async(
        CONFIG,
        strings(&[
            "restore",
            "--from",
            &r,
            "--config-db",
            &url("sg_r"),
            "--dry-run",
            "--json",
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_secret("config dry run", &out);
}
