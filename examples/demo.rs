//! The demo: `cargo run --release --example demo`.
//!
//! Starts two throwaway PostgreSQL clusters, loads a Sourcegraph-shaped
//! instance into the first (the three databases from the testkit fixtures, and
//! volumes with bare git repositories, a Redis-like and a Prometheus-like
//! directory), runs the three backup options into `./sourcegraph-backup-demo/`,
//! restores each into fresh databases of the second cluster and fresh
//! directories, checks every restore against the source (the testkit oracle,
//! tree comparison, `git fsck`), and prints the summary. Exit code 1 when a
//! check fails. Ctrl-C stops the clusters (dropping them stops their servers).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use sourcegraph_backup::config::{ConfigStore, DatabaseSourceOptions};
use sourcegraph_backup::core::model::Database;
use sourcegraph_backup::core::{BackupOption, BackupRepository, ProgressSink};
use sourcegraph_backup::deployment::{Instance, RestoreOptions};
use sourcegraph_backup::pg::PgConnectionConfig;
use sourcegraph_backup::report::{table, Summary};
use sourcegraph_backup_testkit::{oracle, PgCluster};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs the three backup options against a throwaway Sourcegraph-shaped instance
/// and checks every restore against the source.
#[derive(Parser)]
#[command(name = "demo")]
struct Args {
    /// The demo's directory (emptied first): backups, sources and restores go here.
    #[arg(long, value_name = "DIR", default_value = "sourcegraph-backup-demo")]
    dir: PathBuf,
}

const DATABASES: [(Database, &str, &[&str]); 3] = [
    (Database::Frontend, "sg", &["frontend.sql"]),
    (Database::CodeIntel, "codeintel", &["codeintel.sql"]),
    (Database::CodeInsights, "codeinsights", &["codeinsights.sql"]),
];

/// Volumes the demo creates; the deployment's other volumes are marked external.
const VOLUMES: [&str; 3] = ["gitserver-0", "redis-store", "prometheus-v2"];
const NOT_CREATED: [&str; 5] = ["zoekt-0-shared", "blobstore", "redis-cache", "grafana", "caddy"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sourcegraph-backup-testkit/fixtures")
        .join(name)
}

fn conn(cluster: &PgCluster, db: &str) -> Result<PgConnectionConfig, Error> {
    Ok(PgConnectionConfig::from_url(&cluster.url(db))?)
}

fn git(args: &[&str], dir: &Path) -> Result<(), Error> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Demo")
        .env("GIT_AUTHOR_EMAIL", "demo@example.com")
        .env("GIT_COMMITTER_NAME", "Demo")
        .env("GIT_COMMITTER_EMAIL", "demo@example.com")
        .output()
        .map_err(|e| format!("running git (install it: apt-get install git): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// Volumes of a small instance: three bare repositories on gitserver, a Redis
/// snapshot and append-only file, a Prometheus block and write-ahead log.
fn make_volumes(root: &Path) -> Result<(), Error> {
    let work = root.join("work");
    for (i, name) in [
        "github.com/acme/app",
        "github.com/acme/lib",
        "gitlab.com/ops/infra",
    ]
    .iter()
    .enumerate()
    {
        let w = work.join(i.to_string());
        std::fs::create_dir_all(&w)?;
        git(&["init", "-q", "-b", "main"], &w)?;
        for n in 0..3 {
            std::fs::write(
                w.join(format!("file{n}.txt")),
                format!("{name} revision {n}\n").repeat(50),
            )?;
            git(&["add", "."], &w)?;
            git(&["commit", "-q", "-m", &format!("revision {n}")], &w)?;
        }
        let bare = root.join("gitserver-0").join(name).join(".git");
        std::fs::create_dir_all(bare.parent().unwrap_or(root))?;
        git(
            &[
                "clone",
                "-q",
                "--bare",
                &w.to_string_lossy(),
                &bare.to_string_lossy(),
            ],
            root,
        )?;
    }
    std::fs::remove_dir_all(&work)?;
    let redis = root.join("redis-store");
    std::fs::create_dir_all(&redis)?;
    std::fs::write(redis.join("dump.rdb"), b"REDIS0009\xfa\x09redis-ver\x057.0.0\xff")?;
    std::fs::write(
        redis.join("appendonly.aof"),
        "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n".repeat(100),
    )?;
    let prom = root.join("prometheus-v2");
    std::fs::create_dir_all(prom.join("01HZXDEMOBLOCK/chunks"))?;
    std::fs::create_dir_all(prom.join("wal"))?;
    std::fs::write(
        prom.join("01HZXDEMOBLOCK/chunks/000001"),
        (0..65536u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )?;
    std::fs::write(
        prom.join("01HZXDEMOBLOCK/meta.json"),
        "{\"ulid\":\"01HZXDEMOBLOCK\",\"version\":1}\n",
    )?;
    std::fs::write(prom.join("wal/00000000"), vec![0u8; 32768])?;
    Ok(())
}

/// Every file and directory under `root` with its bytes, sorted.
fn tree(root: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
            if p.is_dir() {
                out.push((rel + "/", Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One check and whether it passed.
struct Check {
    option: &'static str,
    what: String,
    ok: bool,
    detail: String,
}

struct Demo {
    src: PgCluster,
    dst: PgCluster,
    dir: PathBuf,
    repo: String,
    checks: Vec<Check>,
    summaries: Vec<(&'static str, Summary, Summary)>,
}

impl Demo {
    fn check(&mut self, option: &'static str, what: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            option,
            what: what.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// The source instance: its three databases (the configuration in the main one) and,
    /// for the all-data option, the volumes the demo made; the deployment's other volumes
    /// are marked external.
    fn source(&self, option: BackupOption) -> Result<Instance, Error> {
        let mut source = Instance::docker_compose().jobs(2).carry_encrypted(true);
        for (db, name, _) in DATABASES {
            source = source.database(db, conn(&self.src, name)?);
        }
        for v in VOLUMES.iter().filter(|_| option == BackupOption::AllData) {
            source = source.volume(v, self.dir.join("source").join(v))?;
        }
        for v in NOT_CREATED {
            source = source.external(v);
        }
        Ok(source)
    }

    /// Backs up with `option`, restores into databases `<prefix>_<db>` and
    /// directories `restored/<prefix>/`, and checks the restore.
    async fn run(&mut self, label: &'static str, option: BackupOption, prefix: &str) -> Result<(), Error> {
        let databases = option != BackupOption::ConfigOnly;
        let volumes = option == BackupOption::AllData;
        let planned = self.source(option)?.plan(option)?;
        let repo = BackupRepository::open(&self.repo)?;
        let backup = planned.run(repo.clone(), ProgressSink::disabled()).await?;
        let reader = repo.open_backup(&backup.backup_id).await?;
        let report = reader.repository().verify(reader.id()).await?;
        self.check(
            label,
            "verify: every artifact matches its SHA-256",
            report.is_ok(),
            format!("{} artifacts", report.checked),
        );

        // The target: fresh databases `<prefix>_<db>` and directories `restored/<prefix>/`.
        let restored = self.dir.join("restored").join(prefix);
        let mut target = Instance::docker_compose().jobs(2);
        if databases {
            for (db, name, _) in DATABASES {
                let name = format!("{prefix}_{name}");
                self.dst.create_database(&name).await?;
                target = target.database(db, conn(&self.dst, &name)?);
            }
            // The restored main database already holds the configuration: not re-applied.
        } else {
            // Configuration only: onto the instance restored by the all-Postgres run,
            // after an administrator changed its site configuration there.
            self.dst
                .batch_execute(
                    "pg_sg",
                    "SELECT set_config('app.current_tenant', '1', false);
                     INSERT INTO critical_and_site_config (type, contents) VALUES ('site', '{\"externalURL\": \"https://changed.example.com\"}')",
                )
                .await?;
            target = target.config_database(conn(&self.dst, "pg_sg")?);
        }
        for v in VOLUMES.iter().filter(|_| volumes) {
            target = target.volume(v, restored.join(v))?;
        }
        let restore = target
            .restore(reader, &RestoreOptions::new())?
            .run(ProgressSink::disabled())
            .await?;
        self.summaries.push((label, backup, restore));

        if databases {
            for (_, db, _) in DATABASES {
                let name = format!("{prefix}_{db}");
                let report = oracle::compare(&self.src, db, &self.dst, &name).await?;
                let detail = report
                    .differences()
                    .into_iter()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("; ");
                self.check(
                    label,
                    format!("oracle: {db} = restored {name}"),
                    report.is_identical(),
                    detail,
                );
            }
        } else {
            let site = |c: PgConnectionConfig| async move {
                let store = ConfigStore::database(c).with_source_options(DatabaseSourceOptions {
                    carry_encrypted: true,
                    ..DatabaseSourceOptions::default()
                });
                let snapshot = store.snapshot().await.ok()?;
                let text = snapshot.site_configurations().next().map(|d| d.text.clone());
                text
            };
            let restored_site = site(conn(&self.dst, "pg_sg")?).await;
            let source_site = site(conn(&self.src, "sg")?).await;
            let ok = restored_site.is_some() && restored_site == source_site;
            self.check(
                label,
                "latest site configuration of pg_sg = the source's again",
                ok,
                "",
            );
        }
        for v in VOLUMES.iter().filter(|_| volumes) {
            let same = tree(&self.dir.join("source").join(v))? == tree(&restored.join(v))?;
            self.check(label, format!("tree: {v} restored byte for byte"), same, "");
        }
        if volumes {
            for repo in [
                "github.com/acme/app",
                "github.com/acme/lib",
                "gitlab.com/ops/infra",
            ] {
                let ok = git(
                    &["fsck", "--strict", "--no-progress"],
                    &restored.join("gitserver-0").join(repo).join(".git"),
                );
                self.check(
                    label,
                    format!("git fsck: {repo}"),
                    ok.is_ok(),
                    ok.err().map(|e| e.to_string()).unwrap_or_default(),
                );
            }
        }
        Ok(())
    }
}

async fn demo(args: Args) -> Result<bool, Error> {
    let dir = std::path::absolute(&args.dir)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(dir.join("source"))?;
    eprintln!("starting two throwaway PostgreSQL clusters ...");
    let (src, dst) = tokio::join!(PgCluster::start(), PgCluster::start());
    let (src, dst) = (src?, dst?);
    eprintln!("loading the Sourcegraph-shaped databases and volumes ...");
    for (_, db, files) in DATABASES {
        src.create_database(db).await?;
        let extra = (db == "sg" && src.major() >= 15).then_some("frontend-pg15.sql");
        for f in files.iter().copied().chain(extra) {
            src.execute_sql_file(db, &fixture(f)).await?;
        }
    }
    make_volumes(&dir.join("source"))?;
    let repo = dir.join("backups").to_string_lossy().into_owned();
    let mut demo = Demo {
        src,
        dst,
        dir: dir.clone(),
        repo,
        checks: Vec::new(),
        summaries: Vec::new(),
    };
    demo.run("all-postgres", BackupOption::AllPostgres, "pg").await?;
    demo.run("config-only", BackupOption::ConfigOnly, "cfg").await?;
    demo.run("all-data", BackupOption::AllData, "all").await?;

    for (label, backup, restore) in &demo.summaries {
        println!("== option {label}");
        println!("{backup}");
        println!("{restore}");
        println!();
    }
    let rows: Vec<Vec<String>> = demo
        .checks
        .iter()
        .map(|c| {
            vec![
                c.option.to_string(),
                if c.ok { "ok".into() } else { "FAILED".into() },
                c.what.clone(),
                c.detail.clone(),
            ]
        })
        .collect();
    println!("== checks");
    print!("{}", table(&["OPTION", "RESULT", "CHECK", "DETAIL"], &rows));
    let failed = demo.checks.iter().filter(|c| !c.ok).count();
    println!(
        "{} checks, {failed} failed; backups in {}",
        demo.checks.len(),
        demo.repo
    );
    Ok(failed == 0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = tokio::select! {
        result = demo(args) => result,
        // Dropping the demo future drops the clusters, which stops their servers.
        _ = tokio::signal::ctrl_c() => Err("interrupted: the clusters were stopped".into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!(
                "error: {}",
                sourcegraph_backup::core::redact::redact_text(&e.to_string())
            );
            ExitCode::FAILURE
        }
    }
}
