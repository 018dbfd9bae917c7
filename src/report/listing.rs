//! `list` and `clean`: every backup prefix of a repository with its state.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{human_bytes, kind_name, table};
use crate::core::repository::{BackupState, Lease};
use crate::core::BackupSummary;

/// The state of a backup prefix.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum State {
    /// Committed and readable.
    Complete,
    /// No manifest yet, and a backup holds a live lease on it.
    InProgress,
    /// No manifest and no live lease: interrupted or failed; `clean` removes it.
    Abandoned,
    /// A manifest that cannot be read.
    Unreadable,
}

impl State {
    /// The state in words.
    pub fn word(self) -> &'static str {
        match self {
            State::Complete => "complete",
            State::InProgress => "in progress",
            State::Abandoned => "abandoned",
            State::Unreadable => "unreadable",
        }
    }
}

/// The lease of a running backup.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct LeaseView {
    /// The host of the backup that holds it.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl From<&Lease> for LeaseView {
    fn from(l: &Lease) -> Self {
        LeaseView {
            host: l.host.clone(),
            pid: l.pid,
            expires_at: l.expires_at,
        }
    }
}

/// A backup that was never committed.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct IncompleteView {
    /// The backup id.
    pub id: String,
    /// `in-progress` or `abandoned`.
    pub state: State,
    /// When its newest object was written.
    pub last_modified: Option<DateTime<Utc>>,
    /// Seconds since then.
    pub age_seconds: Option<i64>,
    /// The lease a backup holds on it (expired for an abandoned one), if any.
    pub lease: Option<LeaseView>,
}

/// A backup whose manifest cannot be read.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct UnreadableView {
    /// The backup id.
    pub id: String,
    /// `unreadable`.
    pub state: State,
    /// Why.
    pub reason: String,
}

/// A complete backup.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct CompleteView {
    /// `complete`.
    pub state: State,
    /// The repository's summary of it.
    #[serde(flatten)]
    pub summary: BackupSummary,
}

/// One row of the listing, in repository order (newest first).
#[derive(Debug, Clone)]
enum Row {
    Complete(CompleteView),
    Incomplete(IncompleteView),
    Unreadable(UnreadableView),
}

/// Every backup of a repository, newest first.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct ListReport {
    /// `list`.
    pub command: &'static str,
    /// False when something needs attention: an unreadable or an abandoned backup.
    pub ok: bool,
    /// The repository location (without secrets).
    pub location: String,
    /// Whether the repository holds no backup at all.
    pub empty: bool,
    /// `no backup under ...` when it is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Complete backups, newest first.
    pub backups: Vec<CompleteView>,
    /// Backups without a manifest: running or abandoned.
    pub incomplete: Vec<IncompleteView>,
    /// Backups whose manifest cannot be read.
    pub unreadable: Vec<UnreadableView>,
    /// What needs attention, one sentence each.
    pub problems: Vec<String>,
    #[serde(skip)]
    rows: Vec<Row>,
}

/// How long ago, in words: `45s`, `12m 3s`, `3h 12m`, `2d 5h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The start time a generated backup id begins with (`20261126T004000.123Z-7f3a`).
fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let stamp = id.get(..19)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3f")
        .ok()
        .map(|t| t.and_utc())
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

impl IncompleteView {
    /// An incomplete backup's view at `now`.
    pub fn new(
        id: &str,
        last_modified: Option<DateTime<Utc>>,
        lease: Option<&Lease>,
        now: DateTime<Utc>,
    ) -> Self {
        let live = lease.is_some_and(|l| l.is_live(now));
        IncompleteView {
            id: id.to_string(),
            state: if live { State::InProgress } else { State::Abandoned },
            last_modified,
            age_seconds: last_modified.map(|t| (now - t).num_seconds()),
            lease: lease.map(LeaseView::from),
        }
    }

    /// What it is, in words; `location` is named in the hint to `clean` it.
    pub fn describe(&self, location: &str) -> String {
        let written = match self.age_seconds {
            Some(a) => format!("last written {} ago", age(a)),
            None => "nothing written yet".to_string(),
        };
        match (&self.state, &self.lease) {
            (State::InProgress, Some(l)) => format!(
                "a backup is writing it ({}pid {}), {written}; its lease runs until {}",
                if l.host.is_empty() {
                    String::new()
                } else {
                    format!("host {}, ", l.host)
                },
                l.pid,
                stamp(l.expires_at)
            ),
            _ => format!(
                "never committed, {written}, no running backup owns it: `clean --from {location}` removes it"
            ),
        }
    }
}

impl ListReport {
    /// The listing of `states` (newest first, as
    /// [`BackupRepository::list_all`](crate::core::BackupRepository::list_all) returns them)
    /// at `now`.
    pub fn new(location: &str, states: Vec<BackupState>, now: DateTime<Utc>) -> Self {
        let mut report = ListReport {
            command: "list",
            ok: true,
            location: location.to_string(),
            empty: states.is_empty(),
            message: states.is_empty().then(|| format!("no backup under {location}")),
            backups: Vec::new(),
            incomplete: Vec::new(),
            unreadable: Vec::new(),
            problems: Vec::new(),
            rows: Vec::new(),
        };
        for state in states {
            match state {
                BackupState::Complete(summary) => {
                    let view = CompleteView {
                        state: State::Complete,
                        summary,
                    };
                    report.backups.push(view.clone());
                    report.rows.push(Row::Complete(view));
                }
                BackupState::Incomplete {
                    id,
                    last_modified,
                    lease,
                } => {
                    let view = IncompleteView::new(&id, last_modified, lease.as_ref(), now);
                    if view.state == State::Abandoned {
                        report
                            .problems
                            .push(format!("backup {id} is abandoned: {}", view.describe(location)));
                    }
                    report.incomplete.push(view.clone());
                    report.rows.push(Row::Incomplete(view));
                }
                BackupState::Unreadable { id, reason } => {
                    report
                        .problems
                        .push(format!("backup {id} cannot be read: {reason}"));
                    let view = UnreadableView {
                        id,
                        state: State::Unreadable,
                        reason,
                    };
                    report.unreadable.push(view.clone());
                    report.rows.push(Row::Unreadable(view));
                }
                // A state a newer core adds: not shown until this report knows it.
                _ => {}
            }
        }
        report.ok = report.problems.is_empty();
        report
    }
}

impl fmt::Display for ListReport {
    /// A table (newest first), a line of counts and one `problem:` line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.empty {
            return write!(f, "no backup under {} (the repository is empty)", self.location);
        }
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| match r {
                Row::Complete(c) => {
                    let b = &c.summary;
                    vec![
                        b.id.clone(),
                        c.state.word().into(),
                        stamp(b.created_at),
                        kind_name(&b.option),
                        human_bytes(b.stored_bytes),
                        b.stores
                            .iter()
                            .map(|(s, _)| s.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                }
                Row::Incomplete(i) => vec![
                    i.id.clone(),
                    i.state.word().into(),
                    id_time(&i.id).map(stamp).unwrap_or_default(),
                    String::new(),
                    String::new(),
                    i.describe(&self.location),
                ],
                Row::Unreadable(u) => vec![
                    u.id.clone(),
                    u.state.word().into(),
                    id_time(&u.id).map(stamp).unwrap_or_default(),
                    String::new(),
                    String::new(),
                    u.reason.clone(),
                ],
            })
            .collect();
        f.write_str(&table(
            &["ID", "STATE", "CREATED", "OPTION", "SIZE", "STORES"],
            &rows,
        ))?;
        let count = |s: State| {
            self.rows
                .iter()
                .filter(|r| match r {
                    Row::Complete(_) => s == State::Complete,
                    Row::Incomplete(i) => i.state == s,
                    Row::Unreadable(_) => s == State::Unreadable,
                })
                .count()
        };
        let counts: Vec<String> = [
            State::Complete,
            State::InProgress,
            State::Abandoned,
            State::Unreadable,
        ]
        .into_iter()
        .filter_map(|s| {
            let n = count(s);
            (n > 0).then(|| format!("{n} {}", s.word()))
        })
        .collect();
        write!(f, "{} under {}", counts.join(", "), self.location)?;
        for p in &self.problems {
            write!(f, "\nproblem: {p}")?;
        }
        Ok(())
    }
}

/// What `clean` did.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct CleanReport {
    /// `clean`.
    pub command: &'static str,
    /// Always true: a clean that fails is an error.
    pub ok: bool,
    /// The repository location (without secrets).
    pub location: String,
    /// The incomplete backups removed.
    pub removed: Vec<IncompleteView>,
    /// Incomplete backups left alone: a running backup owns them.
    pub left: Vec<IncompleteView>,
    /// Backups whose manifest cannot be read: `clean` does not touch them.
    pub unreadable: Vec<UnreadableView>,
}

impl CleanReport {
    /// The report of a clean: `before` is the listing taken first, `removed` the ids
    /// [`BackupRepository::clean_incomplete`](crate::core::BackupRepository::clean_incomplete)
    /// removed.
    pub fn new(location: &str, before: Vec<BackupState>, removed: &[String], now: DateTime<Utc>) -> Self {
        let mut report = CleanReport {
            command: "clean",
            ok: true,
            location: location.to_string(),
            removed: Vec::new(),
            left: Vec::new(),
            unreadable: Vec::new(),
        };
        for state in before {
            match state {
                BackupState::Incomplete {
                    id,
                    last_modified,
                    lease,
                } => {
                    let view = IncompleteView::new(&id, last_modified, lease.as_ref(), now);
                    if removed.contains(&id) {
                        report.removed.push(view);
                    } else {
                        report.left.push(view);
                    }
                }
                BackupState::Unreadable { id, reason } => report.unreadable.push(UnreadableView {
                    id,
                    state: State::Unreadable,
                    reason,
                }),
                _ => {}
            }
        }
        // Removed since the listing was taken (abandoned in between): still say so.
        for id in removed {
            if !report.removed.iter().any(|v| &v.id == id) {
                report.removed.push(IncompleteView::new(id, None, None, now));
            }
        }
        report
    }
}

impl fmt::Display for CleanReport {
    /// One line per backup removed, left or not touched, then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.removed {
            let written = r
                .age_seconds
                .map(|a| format!(", last written {} ago", age(a)))
                .unwrap_or_default();
            writeln!(f, "removed {} (abandoned{written})", r.id)?;
        }
        for l in &self.left {
            let why = match &l.lease {
                Some(lease) if l.state == State::InProgress => format!(
                    "in progress: {}pid {} holds it until {}",
                    if lease.host.is_empty() {
                        String::new()
                    } else {
                        format!("host {}, ", lease.host)
                    },
                    lease.pid,
                    stamp(lease.expires_at)
                ),
                _ => "a backup renewed its lease or committed it meanwhile".to_string(),
            };
            writeln!(f, "left {} ({why})", l.id)?;
        }
        for u in &self.unreadable {
            writeln!(
                f,
                "not touched: {} cannot be read ({}); `clean` only removes incomplete backups",
                u.id, u.reason
            )?;
        }
        write!(
            f,
            "clean {}: {} removed, {} left running",
            self.location,
            self.removed.len(),
            self.left.len()
        )
    }
}
