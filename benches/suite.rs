//! The benchmark suite: `cargo bench` runs the Postgres dump/restore and the
//! volume benchmarks side by side with the tools a user would pick instead
//! (`pg_dump`, `pg_restore`, `tar | zstd`, `restic`) and writes one table:
//! markdown on stdout and JSON in `target/bench/results.json`.
//!
//! ```text
//! cargo bench                      # default size: a few minutes on 2 cores
//! cargo bench -- --size 2          # scale the generated data (1 = 512 MiB database + 512 MiB volume)
//! cargo bench -- --only volumes    # or --only postgres
//! ```
//!
//! Each benchmark is a release-built example program of its store crate
//! (`bench_pg`, `bench_volumes`); they generate their data, time every
//! command in the same run and report ratios, MB/s and peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::Value;

struct Bench {
    group: &'static str,
    package: &'static str,
    example: &'static str,
    size_flag: &'static str,
    base_mib: f64,
    /// Extra flags: the volume benchmark reports medians of 3 runs, because the
    /// first extraction into a fresh directory is much faster than later ones.
    extra: &'static [&'static str],
}

const BENCHES: &[Bench] = &[
    Bench {
        group: "postgres",
        package: "sourcegraph-backup-pg",
        example: "bench_pg",
        size_flag: "--size-mib",
        base_mib: 512.0,
        extra: &["--runs", "3"],
    },
    Bench {
        group: "volumes",
        package: "sourcegraph-backup-volumes",
        example: "bench_volumes",
        size_flag: "--size-mib",
        base_mib: 512.0,
        extra: &["--runs", "3"],
    },
];

fn main() -> ExitCode {
    let mut size = 1.0f64;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) if v > 0.0 => size = v,
                _ => return usage("--size needs a positive number"),
            },
            "--only" => only = args.next(),
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            other if other.starts_with("--") => return usage(&format!("unknown flag {other}")),
            _ => {}
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out_dir = root.join("target").join("bench");
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    let mut results = Vec::new();
    let mut failed = false;
    for b in BENCHES
        .iter()
        .filter(|b| only.as_deref().is_none_or(|o| o == b.group))
    {
        let json_path = out_dir.join(format!("{}.jsonl", b.group));
        let _ = std::fs::remove_file(&json_path);
        let mib = (b.base_mib * size).round().max(16.0) as u64;
        eprintln!("== {} benchmark ({mib} MiB) ==", b.group);
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "run",
                "--release",
                "-q",
                "-p",
                b.package,
                "--example",
                b.example,
                "--",
            ])
            .args([b.size_flag, &mib.to_string()])
            .args(b.extra)
            .arg("--json")
            .arg(&json_path)
            .status();
        match status {
            Ok(s) if s.success() => match read_results(&json_path) {
                Ok(v) => results.push((b.group, v)),
                Err(e) => {
                    eprintln!("error: {} benchmark wrote no readable results: {e}", b.group);
                    failed = true;
                }
            },
            Ok(s) => {
                eprintln!("error: {} benchmark exited with {s}", b.group);
                failed = true;
            }
            Err(e) => {
                eprintln!("error: cannot run the {} benchmark: {e}", b.group);
                failed = true;
            }
        }
    }
    print_table(&results);
    let json = serde_json::json!({
        "size": size,
        "benchmarks": results.iter().map(|(g, v)| serde_json::json!({"group": g, "report": v})).collect::<Vec<_>>(),
    });
    let path = out_dir.join("results.json");
    match serde_json::to_string_pretty(&json).map(|s| std::fs::write(&path, s)) {
        Ok(Ok(())) => eprintln!("results written to {}", path.display()),
        _ => {
            eprintln!("error: cannot write {}", path.display());
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\nusage: cargo bench -- [--size N] [--only postgres|volumes]");
    ExitCode::from(2)
}

fn read_results(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let last = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .ok_or("empty results file")?;
    serde_json::from_str(last).map_err(|e| e.to_string())
}

/// One table across the benchmarks: each peer beside ours, as a ratio of
/// wall time in the same run (>1 means ours is faster). Rows carry `name`,
/// `kind` (backup/restore), `seconds`, `mb_per_s`, `output_bytes`,
/// `peak_rss_kib` and optionally `ours: true`.
fn print_table(results: &[(&str, Value)]) {
    println!("\n| group | operation | tool | s | MB/s | ours is N× faster | output MiB | peak RSS MiB |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for (group, report) in results {
        let rows = report["results"].as_array().cloned().unwrap_or_default();
        for row in &rows {
            let kind = row["kind"].as_str().unwrap_or("?");
            let name = row["name"].as_str().unwrap_or("?");
            let secs = row["seconds"].as_f64().unwrap_or(f64::NAN);
            let ours = rows
                .iter()
                .find(|r| r["kind"] == row["kind"] && r["ours"].as_bool().unwrap_or(false))
                // Without a flag, the first row of each kind is this crate's.
                .or_else(|| rows.iter().find(|r| r["kind"] == row["kind"]))
                .and_then(|r| r["seconds"].as_f64());
            let ratio = ours.map_or("-".to_string(), |o| format!("{:.2}", secs / o));
            let mib = |v: &Value| {
                v.as_f64()
                    .map_or("-".to_string(), |b| format!("{:.1}", b / 1048576.0))
            };
            let rss = row["peak_rss_kib"]
                .as_f64()
                .map_or("-".to_string(), |k| format!("{:.0}", k / 1024.0));
            let name = name.replace('|', "\\|");
            println!(
                "| {group} | {kind} | {name} | {secs:.2} | {:.0} | {ratio} | {} | {rss} |",
                row["mb_per_s"].as_f64().unwrap_or(f64::NAN),
                mib(&row["output_bytes"]),
            );
        }
    }
}
