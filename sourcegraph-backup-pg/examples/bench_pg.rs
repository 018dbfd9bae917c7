//! Benchmark: this crate's Postgres backup and restore side by side with pg_dump/pg_restore
//! on a generated Sourcegraph-shaped database.
//!
//! ```sh
//! cargo run --release -p sourcegraph-backup-pg --example bench_pg -- --size-mib 1024 --jobs 2
//! ```
//!
//! Prints one table: seconds, MB/s (database size / time), ratio to this crate's run, output
//! bytes, and the peak RSS of this process during each of its own runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sourcegraph_backup_core::{
    BackupOption, BackupRepository, Compression, DataStore, ExportContext, Exporter, ImportContext, Importer,
    ProgressSink, StoreSection,
};
use sourcegraph_backup_pg::{PgConnectionConfig, PgExportOptions, PgImportOptions, PgStore};
use sourcegraph_backup_testkit::{PgClientTools, PgCluster};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Row {
    name: String,
    secs: f64,
    bytes: u64,
    rss: Option<u64>,
}

fn dir_size(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.len()
    }
}

/// Resets the peak RSS (Linux: write 5 to clear_refs) and reads it back later.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn string_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Appends one JSON line in the benchmark suite's format (see `benches/suite.rs`).
fn write_json(
    path: &str,
    size_mib: u64,
    db_bytes: u64,
    backup: &[Row],
    restore: &[Row],
) -> Result<(), Error> {
    use std::io::Write;
    let row = |kind: &str, r: &Row| {
        serde_json::json!({
            "kind": kind,
            "name": r.name,
            "ours": r.name.starts_with("sourcegraph-backup"),
            "seconds": r.secs,
            "mb_per_s": db_bytes as f64 / 1e6 / r.secs,
            "output_bytes": if r.bytes > 0 { Some(r.bytes) } else { None },
            "peak_rss_kib": r.rss.map(|b| b / 1024),
        })
    };
    let results: Vec<_> = backup
        .iter()
        .map(|r| row("backup", r))
        .chain(restore.iter().map(|r| row("restore", r)))
        .collect();
    let json = serde_json::json!({ "size_mib": size_mib, "database_bytes": db_bytes, "results": results });
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{json}")?;
    Ok(())
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn db_size(cluster: &PgCluster, db: &str) -> Result<u64, Error> {
    let c = cluster.connect(db).await?;
    let n: i64 = c
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);
    Ok(u64::try_from(n)?)
}

/// Loads the frontend fixture and grows its big tables until the database reaches `target`
/// bytes: event_logs about half of it, then repo, gitserver_repos, lsif_uploads, users.
async fn generate(cluster: &PgCluster, db: &str, target: u64) -> Result<(), Error> {
    cluster.create_database(db).await?;
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sourcegraph-backup-testkit/fixtures/frontend.sql");
    cluster.execute_sql_file(db, &fixture).await?;
    let c = cluster.connect(db).await?;
    c.batch_execute("SELECT set_config('app.current_tenant', '1', false)")
        .await?;
    let mut round = 0i64;
    while db_size(cluster, db).await? < target {
        round += 1;
        let base = round * 1_000_000;
        c.batch_execute(&format!(
            "INSERT INTO event_logs (name, url, user_id, anonymous_user_id, source, argument, version, \"timestamp\", public_argument) \
             SELECT (ARRAY['SearchSubmitted','ViewRepository','CodeIntelHover'])[1 + g % 3], \
                    'https://sg.example.com/r/' || g || '/-/blob/' || md5(g::text), 1 + g % 300, '', 'WEB', \
                    jsonb_build_object('g', g, 'query', 'repo:foo ' || md5(g::text)), '5.9.0', \
                    timestamptz '2024-01-01' + g * interval '7 seconds', '{{}}' \
             FROM generate_series({base}, {base} + 400000) g; \
             INSERT INTO repo (name, description, external_id, external_service_type, metadata, stars, uri) \
             SELECT 'github.com/bench/repo' || g, 'Repository ' || md5(g::text), 'MDEw' || g, 'github', \
                    jsonb_build_object('topic_list', 'go,t' || (g % 7), 'size', g), g % 1000, 'github.com/b/' || g \
             FROM generate_series({base}, {base} + 40000) g; \
             INSERT INTO gitserver_repos (repo_id, clone_status, shard_id, repo_size_bytes) \
             SELECT id, 'cloned', 'gitserver-' || (id % 2), id * 1024 FROM repo r \
             WHERE NOT EXISTS (SELECT 1 FROM gitserver_repos g WHERE g.repo_id = r.id); \
             INSERT INTO lsif_uploads (commit, repository_id, indexer, num_parts, uploaded_parts, state) \
             SELECT lpad(to_hex(g), 40, '0'), 1 + (g % 50), 'scip-go', 1, ARRAY[0], 'completed' \
             FROM generate_series({base}, {base} + 20000) g;"
        ))
        .await?;
    }
    c.batch_execute("VACUUM ANALYZE").await?;
    Ok(())
}

async fn ours_backup(url: &str, dir: &Path, jobs: usize, compression: Compression) -> Result<Row, Error> {
    let repo = BackupRepository::local(dir)?;
    let store =
        PgStore::new("pgsql", PgConnectionConfig::from_url(url)?).with_export_options(PgExportOptions {
            jobs,
            compression,
            ..PgExportOptions::default()
        });
    reset_peak_rss();
    let start = Instant::now();
    let writer = repo.start_backup(BackupOption::AllPostgres);
    let report = store
        .export(ExportContext::new(
            "pgsql",
            writer.clone(),
            ProgressSink::disabled(),
        ))
        .await?;
    let section = StoreSection {
        id: "pgsql".into(),
        kind: store.kind(),
        catalog: vec![],
        details: report.details,
        warnings: report.warnings,
    };
    writer.commit(vec![section], None, report.source, vec![]).await?;
    let secs = start.elapsed().as_secs_f64();
    let name = match compression {
        Compression::None => "sourcegraph-backup (no compression)",
        Compression::Zstd { .. } => "sourcegraph-backup (zstd -1)",
    };
    Ok(Row {
        name: name.into(),
        secs,
        bytes: dir_size(dir),
        rss: peak_rss(),
    })
}

async fn ours_restore(dir: &Path, url: &str, jobs: usize) -> Result<Row, Error> {
    let repo = BackupRepository::local(dir)?;
    let store =
        PgStore::new("pgsql", PgConnectionConfig::from_url(url)?).with_import_options(PgImportOptions {
            jobs,
            ..PgImportOptions::default()
        });
    reset_peak_rss();
    let start = Instant::now();
    let reader = repo.open_latest().await?;
    let report = store
        .import(ImportContext::new("pgsql", reader, ProgressSink::disabled())?)
        .await?;
    eprintln!("restore timings: {}", report.details["timings"]);
    Ok(Row {
        name: "sourcegraph-backup restore".into(),
        secs: start.elapsed().as_secs_f64(),
        bytes: 0,
        rss: peak_rss(),
    })
}

fn tool(
    tools: &PgClientTools,
    name: &str,
    label: &str,
    args: &[&str],
    out: Option<&Path>,
) -> Result<Row, Error> {
    let start = Instant::now();
    let status = tools.command(name).args(args).status()?;
    if !status.success() {
        return Err(format!("{label} failed: {status}").into());
    }
    Ok(Row {
        name: label.into(),
        secs: start.elapsed().as_secs_f64(),
        bytes: out.map_or(0, dir_size),
        rss: None,
    })
}

fn print(title: &str, rows: &[Row], size: u64, reference: f64) {
    println!("\n{title} (database {:.0} MiB)", size as f64 / 1048576.0);
    println!("| run | s | MB/s | sourcegraph-backup speed-up | output MiB | peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.2} | {:.0} | {:.2}x | {} | {} |",
            r.name,
            r.secs,
            size as f64 / 1e6 / r.secs,
            r.secs / reference,
            if r.bytes > 0 {
                format!("{:.1}", r.bytes as f64 / 1048576.0)
            } else {
                "-".into()
            },
            r.rss
                .map_or_else(|| "-".into(), |b| format!("{:.0}", b as f64 / 1048576.0)),
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    let size_mib = arg("--size-mib", 1024) as u64;
    let jobs = arg("--jobs", 2);
    let cluster = PgCluster::start().await?;
    let gen = Instant::now();
    generate(&cluster, "sg", size_mib * 1024 * 1024).await?;
    let size = db_size(&cluster, "sg").await?;
    eprintln!(
        "generated {:.0} MiB in {:.0?}",
        size as f64 / 1048576.0,
        gen.elapsed()
    );
    let tools = PgClientTools::for_server_major(cluster.major())?;
    let work = tempfile::tempdir()?;
    let url = cluster.url("sg");
    let j = jobs.to_string();
    let p = |n: &str| work.path().join(n);

    let ours = ours_backup(&url, &p("ours"), jobs, Compression::DEFAULT_ZSTD).await?;
    let ours_raw = ours_backup(&url, &p("ours-raw"), jobs, Compression::None).await?;
    let fc = p("dump.fc");
    let fd = p("dump.fd");
    let fd0 = p("dump.fd0");
    let s = |x: &Path| x.to_string_lossy().into_owned();
    let rows = vec![
        tool(
            &tools,
            "pg_dump",
            "pg_dump -Fc",
            &["-Fc", "-f", &s(&fc), "-d", &url],
            Some(&fc),
        )?,
        tool(
            &tools,
            "pg_dump",
            &format!("pg_dump -Fd -j{jobs}"),
            &["-Fd", "-j", &j, "-f", &s(&fd), "-d", &url],
            Some(&fd),
        )?,
        tool(
            &tools,
            "pg_dump",
            &format!("pg_dump -Fd -j{jobs} -Z0"),
            &["-Fd", "-j", &j, "-Z0", "-f", &s(&fd0), "-d", &url],
            Some(&fd0),
        )?,
    ];
    let reference = ours.secs;
    let mut all = vec![ours, ours_raw];
    all.extend(rows);
    print("Backup", &all, size, reference);

    cluster.create_database("restore_ours").await?;
    cluster.create_database("restore_pg").await?;
    let restored = ours_restore(&p("ours"), &cluster.url("restore_ours"), jobs).await?;
    let reference = restored.secs;
    let pg = tool(
        &tools,
        "pg_restore",
        &format!("pg_restore -j{jobs} (of -Fd)"),
        &["-j", &j, "--no-owner", "-d", &cluster.url("restore_pg"), &s(&fd)],
        None,
    )?;
    // Our restore ends with ANALYZE; pg_restore leaves the statistics to the user. The
    // like-for-like peer is pg_restore followed by vacuumdb --analyze-only.
    let analyze = tool(
        &tools,
        "vacuumdb",
        &format!("  + vacuumdb -j{jobs} --analyze-only"),
        &["-j", &j, "--analyze-only", "-q", "-d", &cluster.url("restore_pg")],
        None,
    )?;
    let with_analyze = Row {
        name: format!("pg_restore -j{jobs} + vacuumdb --analyze-only"),
        secs: pg.secs + analyze.secs,
        bytes: 0,
        rss: None,
    };
    let restore_rows = [restored, pg, with_analyze];
    print("Restore", &restore_rows, size, reference);
    if let Some(path) = string_arg("--json") {
        write_json(&path, size_mib, size, &all, &restore_rows)?;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
