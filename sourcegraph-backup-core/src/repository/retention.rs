//! Retention: which complete backups of a repository to keep and which to forget, with
//! restic's `forget` semantics.
//!
//! A [`RetentionPolicy`] keeps the union of what its rules keep, each kept backup with its
//! reasons:
//!
//! - `keep_last N`: the N newest backups;
//! - `keep_hourly`/`keep_daily`/`keep_weekly`/`keep_monthly`/`keep_yearly N`: for each of the
//!   last N hours, days, ISO weeks, months or years *that have backups*, the newest backup of
//!   that period (a day without backups does not use up one of the N); periods are UTC, as
//!   backup times are;
//! - `keep_within D`: every backup started less than D before the newest one.
//!
//! [`forget`] applies a policy to a repository and deletes the rest with
//! [`BackupRepository::delete_backup`] (each backup's manifest first, so it stops being
//! restorable before any artifact goes), oldest first. It never removes every complete
//! backup: when a policy would keep none (e.g. `keep_last` of 0, or a repository with one
//! backup), the newest is kept unless [`RetentionPolicy::allow_removing_last`] is set. A
//! policy with no rule keeps everything (as restic does). Backups without a manifest (running,
//! or abandoned: [`BackupRepository::clean_incomplete`] removes those) and backups whose
//! manifest cannot be read are never touched; the report lists them.
//!
//! ```
//! use sourcegraph_backup_core::{BackupRepository, RetentionPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sourcegraph_backup_core::CoreError> {
//! let repo = BackupRepository::in_memory();
//! let policy = RetentionPolicy::new().keep_last(3).keep_daily(7).keep_weekly(4);
//! let report = repo.forget(&policy, true).await?; // dry run: decides, deletes nothing
//! for kept in &report.kept {
//!     println!("keep {} ({:?})", kept.backup.id, kept.reasons);
//! }
//! # Ok(()) }
//! ```

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::{BackupRepository, BackupState, BackupSummary};
use crate::error::CoreError;

/// Which complete backups to keep (see the [module docs](self)). Build it with the setters:
/// `RetentionPolicy::new().keep_last(1).keep_daily(7)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Keep the N newest backups.
    pub keep_last: Option<usize>,
    /// Keep the newest backup of each of the last N hours that have backups.
    pub keep_hourly: Option<usize>,
    /// Keep the newest backup of each of the last N days that have backups.
    pub keep_daily: Option<usize>,
    /// Keep the newest backup of each of the last N ISO weeks that have backups.
    pub keep_weekly: Option<usize>,
    /// Keep the newest backup of each of the last N months that have backups.
    pub keep_monthly: Option<usize>,
    /// Keep the newest backup of each of the last N years that have backups.
    pub keep_yearly: Option<usize>,
    /// Keep every backup started less than this before the newest backup.
    pub keep_within: Option<std::time::Duration>,
    /// Allow the policy to remove every complete backup. Off (the default), the newest one is
    /// kept when the policy would keep none.
    pub allow_removing_last: bool,
}

impl RetentionPolicy {
    /// A policy with no rule (it keeps everything); add rules with the setters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the `n` newest backups.
    pub fn keep_last(mut self, n: usize) -> Self {
        self.keep_last = Some(n);
        self
    }

    /// Keeps the newest backup of each of the last `n` hours that have backups.
    pub fn keep_hourly(mut self, n: usize) -> Self {
        self.keep_hourly = Some(n);
        self
    }

    /// Keeps the newest backup of each of the last `n` days that have backups.
    pub fn keep_daily(mut self, n: usize) -> Self {
        self.keep_daily = Some(n);
        self
    }

    /// Keeps the newest backup of each of the last `n` ISO weeks that have backups.
    pub fn keep_weekly(mut self, n: usize) -> Self {
        self.keep_weekly = Some(n);
        self
    }

    /// Keeps the newest backup of each of the last `n` months that have backups.
    pub fn keep_monthly(mut self, n: usize) -> Self {
        self.keep_monthly = Some(n);
        self
    }

    /// Keeps the newest backup of each of the last `n` years that have backups.
    pub fn keep_yearly(mut self, n: usize) -> Self {
        self.keep_yearly = Some(n);
        self
    }

    /// Keeps every backup started less than `within` before the newest backup.
    pub fn keep_within(mut self, within: std::time::Duration) -> Self {
        self.keep_within = Some(within);
        self
    }

    /// Allows the policy to remove every complete backup (off by default).
    pub fn allow_removing_last(mut self, allow: bool) -> Self {
        self.allow_removing_last = allow;
        self
    }

    /// Whether the policy has no rule (and so keeps everything).
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_hourly.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
            && self.keep_yearly.is_none()
            && self.keep_within.is_none()
    }

    /// Decides, without touching anything, which of `backups` (complete backups, in any
    /// order) to keep and which to remove. Both lists are newest first.
    pub fn apply(&self, backups: &[BackupSummary]) -> (Vec<KeptBackup>, Vec<RemovedBackup>) {
        let mut sorted: Vec<&BackupSummary> = backups.iter().collect();
        sorted.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); sorted.len()];

        if self.is_empty() {
            reasons.iter_mut().for_each(|r| r.push(KeepReason::NoPolicy));
        }
        if let (Some(within), Some(newest)) = (self.keep_within, sorted.first()) {
            let within = chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
            let cutoff = newest.created_at.checked_sub_signed(within);
            for (i, b) in sorted.iter().enumerate() {
                if cutoff.is_none_or(|c| b.created_at > c) {
                    reasons[i].push(KeepReason::Within);
                }
            }
        }
        let buckets: [(Option<usize>, KeepReason, PeriodKey); 6] = [
            (self.keep_last, KeepReason::Last, |i, _| {
                i64::try_from(i).unwrap_or(i64::MAX)
            }),
            (self.keep_hourly, KeepReason::Hourly, |_, t| {
                day_key(t) * 100 + i64::from(t.hour())
            }),
            (self.keep_daily, KeepReason::Daily, |_, t| day_key(t)),
            (self.keep_weekly, KeepReason::Weekly, |_, t| {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }),
            (self.keep_monthly, KeepReason::Monthly, |_, t| {
                i64::from(t.year()) * 100 + i64::from(t.month())
            }),
            (self.keep_yearly, KeepReason::Yearly, |_, t| i64::from(t.year())),
        ];
        for (count, reason, key) in buckets {
            let Some(mut left) = count else { continue };
            let mut last = None;
            for (i, b) in sorted.iter().enumerate() {
                if left == 0 {
                    break;
                }
                let k = key(i, b.created_at);
                if last != Some(k) {
                    last = Some(k);
                    left -= 1;
                    reasons[i].push(reason);
                }
            }
        }
        if !self.allow_removing_last && !sorted.is_empty() && reasons.iter().all(Vec::is_empty) {
            reasons[0].push(KeepReason::LastComplete);
        }

        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for (b, reasons) in sorted.into_iter().zip(reasons) {
            if reasons.is_empty() {
                removed.push(RemovedBackup { backup: b.clone() });
            } else {
                kept.push(KeptBackup {
                    backup: b.clone(),
                    reasons,
                });
            }
        }
        (kept, removed)
    }
}

/// The period a backup falls in, from its position (newest first) and start time: backups
/// with the same key share a period.
type PeriodKey = fn(usize, DateTime<Utc>) -> i64;

/// `yyyymmdd` of a time.
fn day_key(t: DateTime<Utc>) -> i64 {
    i64::from(t.year()) * 10_000 + i64::from(t.month()) * 100 + i64::from(t.day())
}

/// Why a backup is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeepReason {
    /// One of the `keep_last` newest.
    Last,
    /// The newest of its hour (`keep_hourly`).
    Hourly,
    /// The newest of its day (`keep_daily`).
    Daily,
    /// The newest of its ISO week (`keep_weekly`).
    Weekly,
    /// The newest of its month (`keep_monthly`).
    Monthly,
    /// The newest of its year (`keep_yearly`).
    Yearly,
    /// Started within `keep_within` of the newest backup.
    Within,
    /// The policy has no rule, so everything is kept.
    NoPolicy,
    /// The policy would keep no complete backup; the newest is kept because
    /// `allow_removing_last` is not set.
    LastComplete,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeepReason::Last => "keep-last",
            KeepReason::Hourly => "keep-hourly",
            KeepReason::Daily => "keep-daily",
            KeepReason::Weekly => "keep-weekly",
            KeepReason::Monthly => "keep-monthly",
            KeepReason::Yearly => "keep-yearly",
            KeepReason::Within => "keep-within",
            KeepReason::NoPolicy => "no retention rule given",
            KeepReason::LastComplete => "the last complete backup (removing it must be allowed)",
        })
    }
}

/// A complete backup the policy keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptBackup {
    /// The backup.
    pub backup: BackupSummary,
    /// Every rule that keeps it.
    pub reasons: Vec<KeepReason>,
}

/// A complete backup the policy removes (in a dry run: would remove).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedBackup {
    /// The backup.
    pub backup: BackupSummary,
}

/// Why [`forget`] left a backup prefix alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UntouchedState {
    /// No manifest, and a running backup holds its lease.
    InProgress,
    /// No manifest and no live lease: an interrupted or failed backup
    /// ([`BackupRepository::clean_incomplete`] removes it).
    Abandoned,
    /// A manifest exists but cannot be read (e.g. from a newer release).
    Unreadable,
}

/// A backup prefix [`forget`] does not decide about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UntouchedBackup {
    /// The backup id.
    pub id: String,
    /// What it is.
    pub state: UntouchedState,
    /// The details: when it was last written, or why its manifest cannot be read.
    pub detail: String,
}

/// What [`forget`] decided and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForgetReport {
    /// Whether nothing was deleted (the decisions only).
    pub dry_run: bool,
    /// The policy applied.
    pub policy: RetentionPolicy,
    /// Complete backups kept, newest first, each with its reasons.
    pub kept: Vec<KeptBackup>,
    /// Complete backups removed (in a dry run: that would be removed), newest first.
    pub removed: Vec<RemovedBackup>,
    /// Incomplete and unreadable backups, left alone.
    pub untouched: Vec<UntouchedBackup>,
}

impl fmt::Display for ForgetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for k in &self.kept {
            let reasons: Vec<String> = k.reasons.iter().map(ToString::to_string).collect();
            writeln!(f, "keep {} ({})", k.backup.id, reasons.join(", "))?;
        }
        let verb = if self.dry_run { "would remove" } else { "removed" };
        for r in &self.removed {
            writeln!(f, "{verb} {}", r.backup.id)?;
        }
        for u in &self.untouched {
            let state = match u.state {
                UntouchedState::InProgress => "in progress",
                UntouchedState::Abandoned => "abandoned",
                UntouchedState::Unreadable => "unreadable",
            };
            writeln!(f, "left alone {} ({state}: {})", u.id, u.detail)?;
        }
        Ok(())
    }
}

/// Applies `policy` to the complete backups of `repo` and, unless `dry_run`, deletes those it
/// does not keep, oldest first, each with [`BackupRepository::delete_backup`] (manifest
/// first). Incomplete and unreadable backups are never touched; the report lists them. See
/// the [module docs](self) for the rules.
///
/// Stops at the first deletion that fails and returns its error; backups deleted before it
/// are gone (older than the one that failed), the others are untouched.
pub async fn forget(
    repo: &BackupRepository,
    policy: &RetentionPolicy,
    dry_run: bool,
) -> Result<ForgetReport, CoreError> {
    let now = Utc::now();
    let mut complete = Vec::new();
    let mut untouched = Vec::new();
    for state in repo.list_all().await? {
        match state {
            BackupState::Complete(summary) => complete.push(summary),
            BackupState::Incomplete {
                id,
                last_modified,
                lease,
            } => {
                let running = lease.is_some_and(|l| l.is_live(now));
                let written = last_modified.map_or_else(
                    || "nothing written".to_string(),
                    |t| format!("last written {}", t.to_rfc3339()),
                );
                untouched.push(UntouchedBackup {
                    id,
                    state: if running {
                        UntouchedState::InProgress
                    } else {
                        UntouchedState::Abandoned
                    },
                    detail: written,
                });
            }
            BackupState::Unreadable { id, reason } => untouched.push(UntouchedBackup {
                id,
                state: UntouchedState::Unreadable,
                detail: reason,
            }),
        }
    }
    let (kept, removed) = policy.apply(&complete);
    if !dry_run {
        for r in removed.iter().rev() {
            repo.delete_backup(&r.backup.id).await?;
        }
    }
    Ok(ForgetReport {
        dry_run,
        policy: policy.clone(),
        kept,
        removed,
        untouched,
    })
}

impl BackupRepository {
    /// [`forget`] on this repository: applies `policy` and, unless `dry_run`, deletes the
    /// complete backups it does not keep.
    pub async fn forget(&self, policy: &RetentionPolicy, dry_run: bool) -> Result<ForgetReport, CoreError> {
        forget(self, policy, dry_run).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BackupOption;

    fn at(s: &str) -> BackupSummary {
        let created_at = DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"));
        BackupSummary {
            id: created_at.format("%Y%m%dT%H%M%S%.3fZ-0000").to_string(),
            created_at,
            option: BackupOption::ConfigOnly,
            stored_bytes: 0,
            stores: vec![],
            has_warnings: false,
        }
    }

    fn ids(kept: &[KeptBackup]) -> Vec<&str> {
        kept.iter().map(|k| &k.backup.id[..15]).collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day_with_backups() {
        let backups = [
            at("2026-01-01T10:00:00Z"),
            at("2026-01-01T18:00:00Z"),
            at("2026-01-03T09:00:00Z"),
            at("2026-01-07T09:00:00Z"),
            at("2026-01-07T23:00:00Z"),
        ];
        let (kept, removed) = RetentionPolicy::new().keep_daily(2).apply(&backups);
        assert_eq!(ids(&kept), ["20260107T230000", "20260103T090000"]);
        assert_eq!(removed.len(), 3);
        let (kept, _) = RetentionPolicy::new().keep_daily(10).apply(&backups);
        assert_eq!(
            ids(&kept),
            ["20260107T230000", "20260103T090000", "20260101T180000"]
        );
    }

    #[test]
    fn reasons_add_up_and_within_counts_from_the_newest() {
        let backups = [
            at("2026-01-01T10:00:00Z"),
            at("2026-01-05T10:00:00Z"),
            at("2026-01-05T11:00:00Z"),
        ];
        let policy = RetentionPolicy::new()
            .keep_last(1)
            .keep_weekly(5)
            .keep_within(std::time::Duration::from_secs(7200));
        let (kept, removed) = policy.apply(&backups);
        assert_eq!(
            kept[0].reasons,
            [KeepReason::Within, KeepReason::Last, KeepReason::Weekly]
        );
        assert_eq!(kept[1].reasons, [KeepReason::Within]);
        // 2026-01-01 is in ISO week 2026-W01, 2026-01-05 in W02.
        assert_eq!(kept[2].reasons, [KeepReason::Weekly]);
        assert!(removed.is_empty());
    }

    #[test]
    fn the_last_complete_backup_stays_unless_allowed() {
        let backups = [at("2026-01-01T10:00:00Z"), at("2026-01-02T10:00:00Z")];
        let (kept, removed) = RetentionPolicy::new().keep_last(0).apply(&backups);
        assert_eq!(ids(&kept), ["20260102T100000"]);
        assert_eq!(kept[0].reasons, [KeepReason::LastComplete]);
        assert_eq!(removed.len(), 1);
        let (kept, removed) = RetentionPolicy::new()
            .keep_last(0)
            .allow_removing_last(true)
            .apply(&backups);
        assert!(kept.is_empty());
        assert_eq!(removed.len(), 2);
        let (kept, _) = RetentionPolicy::new().apply(&backups);
        assert!(kept.iter().all(|k| k.reasons == [KeepReason::NoPolicy]));
        assert_eq!(kept.len(), 2);
    }
}
