//! Benchmark: this crate's volume backup and restore against `tar`, `zstd`,
//! `sha256sum` and `restic` on a generated gitserver-like volume.
//!
//! ```text
//! cargo run --release -p sourcegraph-backup-volumes --example bench_volumes -- --size-mib 512
//! cargo run --release -p sourcegraph-backup-volumes --example bench_volumes -- --size-mib 2048 --json out.json
//! ```
//!
//! Flags: `--size-mib N` (default 512; 2048 for the issue's 2 GiB), `--runs N`
//! (median of N, default 3), `--dir PATH` (work directory, default a temp dir),
//! `--json PATH` (append one JSON object line), `--keep`, `--ours-only`
//! (skip the other tools, for profiling). `BENCH_DEBUG_RSS=1` prints the
//! resident baseline each time the peak is reset: glibc keeps freed memory in
//! per-thread arenas, so the baseline grows over runs (it plateaus at ~39 MiB
//! with `MALLOC_ARENA_MAX=1`, i.e. retention, not a leak).
//! Every run reads a warm page cache (the volume was just generated); `sync`
//! runs between timed commands, untimed.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sourcegraph_backup_core::{
    BackupOption, BackupRepository, DataStore, ExportContext, Exporter, ImportContext, Importer,
    ProgressSink, SourceInfo, StoreSection,
};
use sourcegraph_backup_volumes::VolumeStore;

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

struct Args {
    size_mib: u64,
    runs: usize,
    dir: Option<PathBuf>,
    json: Option<PathBuf>,
    keep: bool,
    ours_only: bool,
}

fn parse_args() -> BoxResult<Args> {
    let mut args = Args {
        size_mib: 512,
        runs: 3,
        dir: None,
        json: None,
        keep: false,
        ours_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--size-mib" => args.size_mib = value()?.parse()?,
            "--runs" => args.runs = value()?.parse::<usize>()?.max(1),
            "--dir" => args.dir = Some(value()?.into()),
            "--json" => args.json = Some(value()?.into()),
            "--keep" => args.keep = true,
            "--ours-only" => args.ours_only = true,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(args)
}

/// splitmix64: fast, deterministic filler.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` bytes of which about `random_share` is random and the rest
    /// repetitive text: git packs are zlib streams (~0.83 with zstd -1).
    fn fill(&mut self, len: usize, random_share: f64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let block = 4096.min(len - out.len());
            if (self.next() % 1000) as f64 / 1000.0 < random_share {
                for _ in 0..block.div_ceil(8) {
                    out.extend_from_slice(&self.next().to_le_bytes());
                }
            } else {
                let line = format!(
                    "tree {:016x} parent {:016x} author bench\n",
                    self.next(),
                    self.next()
                );
                let end = out.len() + block;
                while out.len() < end {
                    out.extend_from_slice(line.as_bytes());
                }
                out.truncate(end);
            }
        }
        out.truncate(len);
        out
    }
}

struct Volume {
    files: u64,
    bytes: u64,
}

/// Bare repositories (packfile + index, loose objects, refs) and a few large
/// index shards: the shape of the 2 GiB tree in performance-notes.md.
fn generate(root: &Path, size_mib: u64) -> BoxResult<Volume> {
    let total = size_mib << 20;
    let repos = (size_mib * 300 / 2048).max(8);
    let (pack_budget, shard_budget) = (total * 60 / 100, total * 35 / 100);
    let loose_budget = total - pack_budget - shard_budget;
    let mut rng = Rng(42);
    let mut vol = Volume { files: 0, bytes: 0 };
    let mut write = |path: PathBuf, data: &[u8]| -> BoxResult<()> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(path, data)?;
        vol.files += 1;
        vol.bytes += data.len() as u64;
        Ok(())
    };
    for r in 0..repos {
        let repo = root.join(format!("github.com/org{}/repo{r:04}.git", r % 17));
        write(repo.join("HEAD"), b"ref: refs/heads/main\n")?;
        write(
            repo.join("config"),
            b"[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
        )?;
        write(repo.join("description"), b"Unnamed repository\n")?;
        write(
            repo.join("refs/heads/main"),
            format!("{:040x}\n", rng.next()).as_bytes(),
        )?;
        write(
            repo.join("packed-refs"),
            format!("{:040x} refs/tags/v1\n", rng.next()).as_bytes(),
        )?;
        write(repo.join("objects/info/packs"), b"P pack-1.pack\n")?;
        // Pack sizes vary a lot between repositories.
        let weight = 1 + (rng.next() % 7);
        let pack = (pack_budget / repos) * weight / 4;
        write(
            repo.join("objects/pack/pack-1.pack"),
            &rng.fill(pack as usize, 0.8),
        )?;
        write(
            repo.join("objects/pack/pack-1.idx"),
            &rng.fill((pack / 40) as usize, 0.9),
        )?;
        let loose_each = loose_budget / repos / 25;
        for o in 0..25 {
            let id = rng.next();
            let name = format!("objects/{:02x}/{:038x}", id & 0xff, rng.next() as u128 * (o + 1));
            write(repo.join(name), &rng.fill(loose_each as usize, 1.0))?;
        }
    }
    for s in 0..8 {
        let shard = root.join(format!("zoekt/index-{s}.zoekt"));
        write(shard, &rng.fill((shard_budget / 8) as usize, 0.7))?;
    }
    Ok(vol)
}

#[derive(Clone)]
struct Row {
    name: String,
    kind: &'static str,
    seconds: f64,
    output_bytes: Option<u64>,
    peak_rss_kib: Option<u64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sync() {
    let _ = Command::new("sync").status();
}

/// Resets this process's peak RSS (Linux: clear_refs 5), so each phase is measured alone.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    if std::env::var_os("BENCH_DEBUG_RSS").is_some() {
        eprintln!("peak reset; VmHWM now {:?} KiB", peak_rss_kib());
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `script` under `sh -c` through `/usr/bin/time -f %M`: seconds and
/// the largest process's peak RSS.
fn shell(script: &str, env: &[(&str, &str)]) -> BoxResult<(f64, Option<u64>)> {
    let rss_file = std::env::temp_dir().join(format!("bench-rss-{}", std::process::id()));
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .args(["sh", "-c", script])
        .envs(env.iter().copied())
        .output()?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("{script} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()));
    Ok((secs, rss))
}

fn du(path: &Path) -> u64 {
    let out = Command::new("du").args(["-sb"]).arg(path).output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

async fn our_export(repo: &BackupRepository, store: &VolumeStore) -> BoxResult<(String, u64)> {
    let w = repo.start_backup(BackupOption::AllData);
    let report = store
        .export(ExportContext::new(
            store.id(),
            w.clone(),
            ProgressSink::disabled(),
        ))
        .await?;
    let section = StoreSection {
        id: store.id().into(),
        kind: store.kind(),
        catalog: store.catalog(),
        details: report.details,
        warnings: report.warnings,
    };
    let manifest = w
        .commit(vec![section], None, SourceInfo::default(), vec![])
        .await?;
    Ok((w.id().to_string(), manifest.stored_bytes()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BoxResult<()> {
    let args = parse_args()?;
    let tmp = tempfile::Builder::new().prefix("bench-volumes-").tempdir()?;
    let work = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let src = work.join("gitserver-0");
    std::fs::create_dir_all(&src)?;
    eprintln!(
        "generating a {} MiB gitserver-like volume in {}",
        args.size_mib,
        src.display()
    );
    let vol = generate(&src, args.size_mib)?;
    sync();
    let src_s = src.display().to_string();
    let mb = vol.bytes as f64 / 1e6;
    let mut rows: Vec<Row> = Vec::new();
    let mut time_runs = |name: &str,
                         kind: &'static str,
                         f: &mut dyn FnMut() -> BoxResult<(f64, Option<u64>, Option<u64>)>|
     -> BoxResult<Row> {
        let mut secs = Vec::new();
        let (mut out, mut rss) = (None, None);
        for _ in 0..args.runs {
            let (s, o, r) = f()?;
            secs.push(s);
            out = o;
            rss = rss.max(r);
            sync();
        }
        let row = Row {
            name: name.into(),
            kind,
            seconds: median(secs),
            output_bytes: out,
            peak_rss_kib: rss,
        };
        eprintln!("{:<48} {:>8.2} s", row.name, row.seconds);
        rows.push(row.clone());
        Ok(row)
    };

    // This crate, in process: default options (1 GiB parts), then 128 MiB parts.
    let repo_dir = work.join("ours-repo");
    let repo = BackupRepository::local(&repo_dir)?;
    let mut last_backup = String::new();
    let handle = tokio::runtime::Handle::current();
    for (label, part) in [
        ("sourcegraph-backup-volumes export (1 GiB parts)", 1u64 << 30),
        ("sourcegraph-backup-volumes export (128 MiB parts)", 128 << 20),
    ] {
        let store = VolumeStore::new("gitserver-0", &src).part_size(part);
        time_runs(label, "backup", &mut || {
            if !last_backup.is_empty() {
                tokio::task::block_in_place(|| handle.block_on(repo.delete_backup(&last_backup)))?;
            }
            reset_peak();
            let start = Instant::now();
            let (id, stored) = tokio::task::block_in_place(|| handle.block_on(our_export(&repo, &store)))?;
            let secs = start.elapsed().as_secs_f64();
            last_backup = id;
            Ok((secs, Some(stored), peak_rss_kib()))
        })?;
    }

    if args.ours_only {
        print_table(&rows, &vol, args.size_mib, args.runs);
        return Ok(());
    }
    let zst = work.join("peer.tar.zst");
    let zst_s = zst.display().to_string();
    time_runs("tar -cf - | zstd -1 -T0 | sha256sum", "backup", &mut || {
        let (s, r) = shell(
            &format!("tar -cf - -C '{src_s}' . | zstd -1 -T0 -q | sha256sum >/dev/null"),
            &[],
        )?;
        Ok((s, None, r))
    })?;
    time_runs(
        "tar -cf - | zstd -1 -T0 | tee FILE | sha256sum",
        "backup",
        &mut || {
            let (s, r) = shell(
                &format!("tar -cf - -C '{src_s}' . | zstd -1 -T0 -q | tee '{zst_s}' | sha256sum >/dev/null"),
                &[],
            )?;
            Ok((s, std::fs::metadata(&zst).ok().map(|m| m.len()), r))
        },
    )?;
    time_runs("tar -cf - | sha256sum", "backup", &mut || {
        let (s, r) = shell(&format!("tar -cf - -C '{src_s}' . | sha256sum >/dev/null"), &[])?;
        Ok((s, Some(vol.bytes), r))
    })?;

    let restic_repo = work.join("restic-repo");
    let restic_s = restic_repo.display().to_string();
    let restic_env = [
        ("RESTIC_PASSWORD", "bench-only-password"),
        ("RESTIC_REPOSITORY", restic_s.as_str()),
    ];
    let restic = have("restic");
    if restic {
        time_runs("restic backup (first run)", "backup", &mut || {
            let _ = std::fs::remove_dir_all(&restic_repo);
            shell("restic init -q", &restic_env)?;
            let (s, r) = shell(&format!("restic backup -q '{src_s}'"), &restic_env)?;
            Ok((s, Some(du(&restic_repo)), r))
        })?;
        time_runs("restic backup (second run, unchanged)", "backup", &mut || {
            let (s, r) = shell(&format!("restic backup -q '{src_s}'"), &restic_env)?;
            Ok((s, Some(du(&restic_repo)), r))
        })?;
    } else {
        eprintln!("note: restic is not installed (apt-get install restic); its rows are skipped");
    }

    // Restores.
    let target = work.join("restore-target");
    let target_s = target.display().to_string();
    time_runs(
        "sourcegraph-backup-volumes import (2 parts at a time)",
        "restore",
        &mut || {
            let _ = std::fs::remove_dir_all(&target);
            sync();
            let store = VolumeStore::new("gitserver-0", &target);
            reset_peak();
            let start = Instant::now();
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let ctx = ImportContext::new(
                        "gitserver-0",
                        repo.open_backup(&last_backup).await?,
                        ProgressSink::disabled(),
                    )?;
                    store.import(ctx).await
                })
            })?;
            Ok((start.elapsed().as_secs_f64(), None, peak_rss_kib()))
        },
    )?;
    time_runs("zstd -d | tar -x", "restore", &mut || {
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(&target)?;
        sync();
        let (s, r) = shell(&format!("zstd -d -c -q '{zst_s}' | tar -x -C '{target_s}'"), &[])?;
        Ok((s, None, r))
    })?;
    if restic {
        time_runs("restic restore", "restore", &mut || {
            let _ = std::fs::remove_dir_all(&target);
            sync();
            let (s, r) = shell(
                &format!("restic restore -q latest --target '{target_s}'"),
                &restic_env,
            )?;
            Ok((s, None, r))
        })?;
    }

    print_table(&rows, &vol, args.size_mib, args.runs);
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "size_mib": args.size_mib,
            "files": vol.files,
            "bytes": vol.bytes,
            "runs": args.runs,
            "results": rows.iter().map(|r| serde_json::json!({
                "name": r.name, "kind": r.kind, "seconds": r.seconds,
                "mb_per_s": mb / r.seconds, "output_bytes": r.output_bytes,
                "peak_rss_kib": r.peak_rss_kib,
                "ours": r.name.starts_with("sourcegraph-backup-volumes"),
            })).collect::<Vec<_>>(),
        });
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{json}")?;
    }
    if args.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

fn print_table(rows: &[Row], vol: &Volume, size_mib: u64, runs: usize) {
    let mb = vol.bytes as f64 / 1e6;
    println!(
        "\nVolume: {size_mib} MiB requested, {} files, {:.1} MB; median of {runs} run(s), warm page cache.\n",
        vol.files, mb
    );
    println!("| kind | command | s | MB/s | ours is N× faster | output bytes | peak RSS MiB |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let ours = rows
            .iter()
            .find(|o| o.kind == r.kind && o.name.starts_with("sourcegraph-backup-volumes"))
            .map_or(f64::NAN, |o| o.seconds);
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.2}× | {} | {} |",
            r.kind,
            r.name,
            r.seconds,
            mb / r.seconds,
            r.seconds / ours,
            r.output_bytes.map_or("-".into(), |b| b.to_string()),
            r.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    println!("\n\"ours is N× faster\" = this command's time ÷ this crate's time for the same kind (first row of the kind); > 1 means this crate is faster.");
}
