//! What a command did, as typed values: each is `Serialize` (one JSON object for scripts)
//! and `Display` (the table a person reads). Nothing here prints.
//!
//! - [`Summary`]: a backup or restore, one [`StoreRow`] per store;
//! - [`PlanReport`]: what a backup would include or skip, and why;
//! - [`VerifySummary`]: a backup's artifacts re-read and checked;
//! - [`ListReport`] and [`CleanReport`]: every backup of a repository, and what `clean` removed.
//!
//! Locations come from the stores' `location()`, which never holds a secret; a program that
//! prints these should still pass its output through
//! [`redact_text`](crate::core::redact::redact_text), as the `sourcegraph-backup` command does.

mod listing;
mod plan;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::core::pipeline::{BackupOutcome, PartialRestore, RestoreOutcome};
use crate::core::plan::{Plan, VolumeMethod};
use crate::core::repository::ArtifactProblem;
use crate::core::{Decision, VerifyReport};

pub use listing::{
    age, CleanReport, CompleteView, IncompleteView, LeaseView, ListReport, State, UnreadableView,
};
pub use plan::{PlanReport, PlanStoreRow};

/// What happened to one store.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
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
    /// The status in words, as the table shows it.
    pub fn word(self) -> &'static str {
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

/// One row of a [`Summary`].
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
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

impl StoreRow {
    fn new(
        store: &str,
        kind: String,
        location: Option<String>,
        status: Status,
        reason: Option<String>,
    ) -> Self {
        StoreRow {
            store: store.to_string(),
            kind,
            location,
            status,
            reason,
            stored_bytes: None,
            bytes: None,
            seconds: None,
            mb_per_s: None,
            warnings: Vec::new(),
            details: serde_json::Value::Null,
        }
    }
}

/// The summary of a backup or a restore.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct Summary {
    /// `backup` or `restore`.
    pub command: &'static str,
    /// False only for a restore that failed part-way.
    pub ok: bool,
    /// The backup repository location (without secrets).
    pub location: String,
    /// The backup written or read.
    pub backup_id: String,
    /// The backup option (`config-only`, `all-postgres`, `all-data`).
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

/// A byte count for people: `512 B`, `1.50 KiB`, `3.20 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

impl Summary {
    /// The summary of a committed backup; skipped rows come from its plan.
    pub fn of_backup(
        location: &str,
        outcome: &BackupOutcome,
        locations: &BTreeMap<String, String>,
    ) -> Summary {
        let mut rows = Vec::new();
        let plan: Option<&Plan> = outcome.manifest.plan.as_ref();
        for s in &outcome.stores {
            let mut row = StoreRow::new(
                &s.store,
                kind_name(&s.kind),
                locations.get(&s.store).cloned(),
                Status::Included,
                None,
            );
            row.stored_bytes = Some(s.stored_bytes);
            row.bytes = Some(s.raw_bytes);
            row.seconds = Some(s.elapsed.as_secs_f64());
            row.mb_per_s = rate(s.raw_bytes, s.elapsed);
            row.warnings = s.warnings.clone();
            rows.push(row);
        }
        for s in plan.iter().flat_map(|p| p.stores.iter()) {
            if s.decision == Decision::Skipped {
                rows.push(StoreRow::new(
                    &s.id,
                    kind_name(&s.kind),
                    None,
                    Status::Skipped,
                    Some(s.reason.clone()),
                ));
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
            rows.push(StoreRow::new(
                &v.name,
                "volume".into(),
                None,
                status,
                Some(v.reason.clone()),
            ));
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

    /// The summary of a restore; `reasons` says why a store of the backup was not restored,
    /// `kinds` gives each store's kind.
    pub fn of_restore(
        location: &str,
        option: String,
        outcome: &RestoreOutcome,
        dry_run: bool,
        reasons: &BTreeMap<String, String>,
        locations: &BTreeMap<String, String>,
        kinds: &BTreeMap<String, String>,
    ) -> Summary {
        let kind = |s: &str| kinds.get(s).cloned().unwrap_or_default();
        let mut rows = Vec::new();
        let mut warnings = Vec::new();
        for (store, report, elapsed) in &outcome.stores {
            warnings.extend(report.warnings.iter().map(|w| format!("{store}: {w}")));
            let status = if dry_run {
                Status::WouldRestore
            } else {
                Status::Restored
            };
            let mut row = StoreRow::new(store, kind(store), locations.get(store).cloned(), status, None);
            row.bytes = Some(report.bytes);
            row.seconds = Some(elapsed.as_secs_f64());
            row.mb_per_s = rate(report.bytes, *elapsed);
            row.warnings = report.warnings.clone();
            row.details = serde_json::to_value(&report.details).unwrap_or_default();
            rows.push(row);
        }
        for store in &outcome.not_restored {
            let reason = reasons
                .get(store)
                .cloned()
                .unwrap_or_else(|| "no target was given for it".into());
            rows.push(StoreRow::new(
                store,
                kind(store),
                None,
                Status::NotRestored,
                Some(reason),
            ));
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

    /// The summary of a restore that failed part-way: what was restored, what failed (and
    /// why), what was not started.
    pub fn of_partial_restore(
        location: &str,
        option: String,
        partial: &PartialRestore,
        dry_run: bool,
        reasons: &BTreeMap<String, String>,
        locations: &BTreeMap<String, String>,
        kinds: &BTreeMap<String, String>,
    ) -> Summary {
        let mut summary = Summary::of_restore(
            location,
            option,
            &partial.outcome,
            dry_run,
            reasons,
            locations,
            kinds,
        );
        summary.ok = false;
        let kind = |s: &str| kinds.get(s).cloned().unwrap_or_default();
        for (store, error) in &partial.failed {
            // The store's own error says why; the pipeline's wrapper only names the store.
            let why = std::error::Error::source(error).map_or_else(|| error.to_string(), ToString::to_string);
            summary.stores.push(StoreRow::new(
                store,
                kind(store),
                locations.get(store).cloned(),
                Status::Failed,
                Some(why),
            ));
        }
        for store in &partial.not_started {
            summary.stores.push(StoreRow::new(
                store,
                kind(store),
                locations.get(store).cloned(),
                Status::NotStarted,
                Some("an earlier step failed".into()),
            ));
        }
        summary
    }

    /// The row of `store` (a database or the configuration before a volume of the same name).
    pub fn row(&self, store: &str) -> Option<&StoreRow> {
        self.stores
            .iter()
            .find(|r| r.store == store && r.kind != "volume")
            .or_else(|| self.stores.iter().find(|r| r.store == store))
    }
}

/// Renders rows of cells as a left-aligned table with a header. Every cell is passed through
/// [`redact_text`](crate::core::redact::redact_text) first, so the columns line up with what is
/// shown and no secret is.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| crate::core::redact::redact_text(c)).collect())
        .collect();
    let rows = &rows;
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

impl fmt::Display for Summary {
    /// A header line, one table row per store, a dry run's diffs, warnings and the total time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dry = if self.dry_run {
            " (dry run: nothing was changed)"
        } else {
            ""
        };
        let failed = if self.ok { "" } else { " (FAILED part-way)" };
        writeln!(
            f,
            "{} {} ({}) at {}{dry}{failed}",
            self.command, self.backup_id, self.option, self.location
        )?;
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
                    r.bytes.map(human_bytes).unwrap_or_default(),
                    r.stored_bytes.map(human_bytes).unwrap_or_default(),
                    r.mb_per_s.map(|m| format!("{m:.1}")).unwrap_or_default(),
                    r.seconds.map(|s| format!("{s:.1}s")).unwrap_or_default(),
                    r.location.clone().unwrap_or_default(),
                    status,
                ]
            })
            .collect();
        f.write_str(&table(
            &["STORE", "BYTES", "STORED", "MB/S", "TIME", "LOCATION", "STATUS"],
            &rows,
        ))?;
        for r in &self.stores {
            // A configuration restore reports its (redacted) diffs: show them on a dry run.
            let diffs = r.details.get("diffs").and_then(|d| d.as_array());
            for d in diffs.into_iter().flatten().filter(|_| self.dry_run) {
                let name = d.get("document").and_then(|v| v.as_str()).unwrap_or("?");
                writeln!(f, "--- {}: {name} would change:", r.store)?;
                writeln!(
                    f,
                    "{}",
                    d.get("diff")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .trim_end()
                )?;
            }
        }
        for r in &self.stores {
            for w in &r.warnings {
                writeln!(f, "warning: {}: {w}", r.store)?;
            }
        }
        write!(f, "total time {:.1}s", self.elapsed_seconds)
    }
}

/// What `verify` found.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct VerifySummary {
    /// `verify`.
    pub command: &'static str,
    /// Whether every artifact matched.
    pub ok: bool,
    /// The repository location (without secrets).
    pub location: String,
    /// The backup verified.
    pub backup_id: String,
    /// Artifacts read.
    pub checked: usize,
    /// Bytes read.
    pub bytes: u64,
    /// One entry per artifact that is missing or does not match.
    pub problems: Vec<ArtifactProblem>,
}

impl VerifySummary {
    /// The summary of `report`, a verification of a backup at `location`.
    pub fn new(location: &str, report: &VerifyReport) -> Self {
        VerifySummary {
            command: "verify",
            ok: report.is_ok(),
            location: location.to_string(),
            backup_id: report.backup.clone(),
            checked: report.checked,
            bytes: report.bytes,
            problems: report.problems.clone(),
        }
    }
}

impl fmt::Display for VerifySummary {
    /// One `problem:` line per problem, then one line with the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "problem: {}: {}", p.path, p.problem)?;
        }
        write!(
            f,
            "verify {} at {}: {} artifacts, {} checked, {}",
            self.backup_id,
            self.location,
            self.checked,
            human_bytes(self.bytes),
            if self.ok {
                "all match their size and SHA-256".to_string()
            } else {
                format!("{} problem(s)", self.problems.len())
            }
        )
    }
}
