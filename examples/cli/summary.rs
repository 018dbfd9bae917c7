//! The final summary: a table on stdout, or one JSON object with `--json`.

use std::time::Duration;

use indicatif::HumanBytes;
use serde::Serialize;
use sourcegraph_backup::core::pipeline::{BackupOutcome, PartialRestore, RestoreOutcome};
use sourcegraph_backup::core::plan::{Plan, VolumeMethod};
use sourcegraph_backup::core::{Decision, VerifyReport};

use super::out;

/// What happened to one store.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Written into the backup.
    Included,
    /// Left out by the plan.
    Skipped,
    /// Imported into its target.
    Restored,
    /// A dry run compared it with its target and changed nothing.
    WouldRestore,
    /// In the backup, but no target was given for it.
    NotRestored,
    /// A volume whose data a database dump carries (a live data directory).
    Carried,
    /// Its restore failed.
    Failed,
    /// Not started because an earlier step failed.
    NotStarted,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Included => "included",
            Status::Skipped => "skipped",
            Status::Restored => "restored",
            Status::WouldRestore => "would restore",
            Status::NotRestored => "not restored",
            Status::Carried => "carried",
            Status::Failed => "FAILED",
            Status::NotStarted => "not started",
        }
    }
}

/// One row of the summary.
#[derive(Serialize, Debug)]
pub struct StoreRow {
    /// The store id.
    pub store: String,
    /// `config`, `postgres` or `volume`.
    pub kind: String,
    /// Where it is, without secrets (the store's `location()`), when known.
    pub location: Option<String>,
    /// What happened.
    pub status: Status,
    /// Why it was skipped or not restored, or why it failed.
    pub reason: Option<String>,
    /// Bytes as stored in the backup (compressed).
    pub stored_bytes: Option<u64>,
    /// Bytes before compression (backup) or read from the backup (restore).
    pub bytes: Option<u64>,
    /// Wall time in seconds.
    pub seconds: Option<f64>,
    /// Throughput over `bytes`, in MB/s (10^6 bytes).
    pub mb_per_s: Option<f64>,
    /// Warnings the store reported.
    pub warnings: Vec<String>,
    /// What the store's importer reported (restore only).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// The whole summary of a backup or restore.
#[derive(Serialize, Debug)]
pub struct Summary {
    /// `backup` or `restore`.
    pub command: &'static str,
    /// False only for a restore that failed part-way (its error is printed too).
    pub ok: bool,
    /// The backup repository location (without secrets).
    pub location: String,
    /// The backup written or read.
    pub backup_id: String,
    /// The backup option.
    pub option: String,
    /// Whether this was a dry run (nothing was changed).
    pub dry_run: bool,
    /// One row per store.
    pub stores: Vec<StoreRow>,
    /// Backup-wide warnings.
    pub warnings: Vec<String>,
    /// Wall time in seconds.
    pub elapsed_seconds: f64,
}

fn rate(bytes: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (secs > 0.0).then(|| bytes as f64 / 1e6 / secs)
}

/// The serde name of a unit enum value (`config`, `all-data`).
pub fn kind_name<T: Serialize>(kind: &T) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Builds the summary of a committed backup; skipped rows come from the plan.
pub fn of_backup(
    location: &str,
    outcome: &BackupOutcome,
    locations: &dyn Fn(&str) -> Option<String>,
) -> Summary {
    let mut rows = Vec::new();
    let plan: Option<&Plan> = outcome.manifest.plan.as_ref();
    for s in &outcome.stores {
        rows.push(StoreRow {
            store: s.store.clone(),
            kind: kind_name(&s.kind),
            location: locations(&s.store),
            status: Status::Included,
            reason: None,
            stored_bytes: Some(s.stored_bytes),
            bytes: Some(s.raw_bytes),
            seconds: Some(s.elapsed.as_secs_f64()),
            mb_per_s: rate(s.raw_bytes, s.elapsed),
            warnings: s.warnings.clone(),
            details: serde_json::Value::Null,
        });
    }
    for s in plan.iter().flat_map(|p| p.stores.iter()) {
        if s.decision == Decision::Skipped {
            rows.push(StoreRow {
                store: s.id.clone(),
                kind: kind_name(&s.kind),
                location: None,
                status: Status::Skipped,
                reason: Some(s.reason.clone()),
                stored_bytes: None,
                bytes: None,
                seconds: None,
                mb_per_s: None,
                warnings: Vec::new(),
                details: serde_json::Value::Null,
            });
        }
    }
    // Volumes: skipped ones, and database data directories a dump carries.
    for v in plan.iter().flat_map(|p| p.volumes.iter()) {
        let status = match (&v.decision, &v.method) {
            (Decision::Skipped, _) => Status::Skipped,
            (_, VolumeMethod::LogicalDump(_)) => Status::Carried,
            _ => continue,
        };
        if rows.iter().any(|r| r.store == v.name && r.kind == "volume") {
            continue;
        }
        rows.push(StoreRow {
            store: v.name.clone(),
            kind: "volume".into(),
            location: None,
            status,
            reason: Some(v.reason.clone()),
            stored_bytes: None,
            bytes: None,
            seconds: None,
            mb_per_s: None,
            warnings: Vec::new(),
            details: serde_json::Value::Null,
        });
    }
    Summary {
        command: "backup",
        ok: true,
        location: location.to_string(),
        backup_id: outcome.manifest.backup_id.clone(),
        option: kind_name(&outcome.manifest.option),
        dry_run: false,
        stores: rows,
        warnings: outcome.manifest.warnings.clone(),
        elapsed_seconds: outcome.elapsed.as_secs_f64(),
    }
}

/// A row for a store that was not restored, failed or was not started.
fn row(store: &str, location: Option<String>, status: Status, reason: String) -> StoreRow {
    StoreRow {
        store: store.to_string(),
        kind: String::new(),
        location,
        status,
        reason: Some(reason),
        stored_bytes: None,
        bytes: None,
        seconds: None,
        mb_per_s: None,
        warnings: Vec::new(),
        details: serde_json::Value::Null,
    }
}

/// Builds the summary of a restore that failed part-way: what was restored,
/// what failed (and why), what was not started.
pub fn of_partial_restore(
    location: &str,
    option: String,
    partial: &PartialRestore,
    dry_run: bool,
    reasons: &dyn Fn(&str) -> String,
    locations: &dyn Fn(&str) -> Option<String>,
) -> Summary {
    let mut summary = of_restore(location, option, &partial.outcome, dry_run, reasons, locations);
    summary.ok = false;
    for (store, error) in &partial.failed {
        // The store's own error says why; the pipeline's wrapper only names the store.
        let why = std::error::Error::source(error).map_or_else(|| error.to_string(), ToString::to_string);
        summary
            .stores
            .push(row(store, locations(store), Status::Failed, why));
    }
    for store in &partial.not_started {
        summary.stores.push(row(
            store,
            locations(store),
            Status::NotStarted,
            "an earlier step failed".into(),
        ));
    }
    summary
}

/// Builds the summary of a restore; `reasons` says why a store of the backup
/// was not restored.
pub fn of_restore(
    location: &str,
    option: String,
    outcome: &RestoreOutcome,
    dry_run: bool,
    reasons: &dyn Fn(&str) -> String,
    locations: &dyn Fn(&str) -> Option<String>,
) -> Summary {
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (store, report, elapsed) in &outcome.stores {
        warnings.extend(report.warnings.iter().map(|w| format!("{store}: {w}")));
        rows.push(StoreRow {
            store: store.clone(),
            kind: String::new(),
            location: locations(store),
            status: if dry_run {
                Status::WouldRestore
            } else {
                Status::Restored
            },
            reason: None,
            stored_bytes: None,
            bytes: Some(report.bytes),
            seconds: Some(elapsed.as_secs_f64()),
            mb_per_s: rate(report.bytes, *elapsed),
            warnings: report.warnings.clone(),
            details: report.details.clone(),
        });
    }
    for store in &outcome.not_restored {
        rows.push(row(store, None, Status::NotRestored, reasons(store)));
    }
    Summary {
        command: "restore",
        ok: true,
        location: location.to_string(),
        backup_id: outcome.backup.clone(),
        option,
        dry_run,
        stores: rows,
        warnings,
        elapsed_seconds: outcome.elapsed.as_secs_f64(),
    }
}

/// Prints a JSON value on stdout as one line, every string redacted.
pub fn print_json<T: Serialize>(value: &T) {
    out::json(value);
}

/// Renders rows of cells as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

impl Summary {
    /// Prints the summary: JSON or a table.
    pub fn print(&self, json: bool) {
        if json {
            print_json(self);
            return;
        }
        let dry = if self.dry_run {
            " (dry run: nothing was changed)"
        } else {
            ""
        };
        let failed = if self.ok { "" } else { " (FAILED part-way)" };
        out::line(format!(
            "{} {} ({}) at {}{dry}{failed}",
            self.command, self.backup_id, self.option, self.location
        ));
        let rows: Vec<Vec<String>> = self
            .stores
            .iter()
            .map(|r| {
                let status = match &r.reason {
                    Some(reason) if r.status != Status::Included => format!("{}: {reason}", r.status.word()),
                    _ => r.status.word().to_string(),
                };
                vec![
                    r.store.clone(),
                    r.bytes.map(|b| HumanBytes(b).to_string()).unwrap_or_default(),
                    r.stored_bytes
                        .map(|b| HumanBytes(b).to_string())
                        .unwrap_or_default(),
                    r.mb_per_s.map(|m| format!("{m:.1}")).unwrap_or_default(),
                    r.seconds.map(|s| format!("{s:.1}s")).unwrap_or_default(),
                    r.location.clone().unwrap_or_default(),
                    status,
                ]
            })
            .collect();
        out::text(table(
            &["STORE", "BYTES", "STORED", "MB/S", "TIME", "LOCATION", "STATUS"],
            &rows,
        ));
        for r in &self.stores {
            // A configuration restore reports its (redacted) diffs: show them on a dry run.
            let diffs = r.details.get("diffs").and_then(|d| d.as_array());
            for d in diffs.into_iter().flatten().filter(|_| self.dry_run) {
                let name = d.get("document").and_then(|v| v.as_str()).unwrap_or("?");
                out::line(format!("--- {}: {name} would change:", r.store));
                out::line(
                    d.get("diff")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .trim_end(),
                );
            }
        }
        for w in self
            .stores
            .iter()
            .flat_map(|r| r.warnings.iter().map(move |w| (r, w)))
        {
            out::line(format!("warning: {}: {}", w.0.store, w.1));
        }
        out::line(format!("total time {:.1}s", self.elapsed_seconds));
    }
}

/// Prints `verify`'s output.
pub fn print_verify(location: &str, report: &VerifyReport, json: bool) {
    if json {
        print_json(&serde_json::json!({
            "command": "verify", "ok": report.is_ok(), "location": location,
            "backup_id": report.backup, "checked": report.checked, "bytes": report.bytes,
            "problems": report.problems,
        }));
        return;
    }
    for p in &report.problems {
        out::line(format!("problem: {}: {}", p.path, p.problem));
    }
    out::line(format!(
        "verify {} at {}: {} artifacts, {} checked, {}",
        report.backup,
        location,
        report.checked,
        HumanBytes(report.bytes),
        if report.is_ok() {
            "all match their size and SHA-256".to_string()
        } else {
            format!("{} problem(s)", report.problems.len())
        }
    ));
}
