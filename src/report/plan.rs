//! `plan`: what a backup would include or skip, and why, without touching anything.

use std::fmt;

use serde::Serialize;

use super::{kind_name, table};
use crate::core::catalog::catalog_entry;
use crate::core::plan::{Plan, PlannedItem, PlannedVolume, Resolution, VolumeMethod};
use crate::core::Decision;
use crate::deployment::PlanProblem;

/// One store of a [`PlanReport`].
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct PlanStoreRow {
    /// The store id (`config`, `pgsql`, `gitserver-0`, ...).
    pub store: String,
    /// `config`, `postgres` or `volume`.
    pub kind: String,
    /// `included`, `skipped`, or `carried` (a database data directory its dump carries).
    pub decision: String,
    /// Why, in words drawn from the catalog.
    pub reason: String,
    /// Where it would be read from (without secrets), when the deployment gives it.
    pub location: Option<String>,
}

/// What a backup of a deployment would include and skip, and why; and what stops it from
/// running as described.
#[derive(Serialize, Debug, Clone)]
#[non_exhaustive]
pub struct PlanReport {
    /// `plan`.
    pub command: &'static str,
    /// False when the backup would be refused (see `problems`).
    pub ok: bool,
    /// The backup option (`config-only`, `all-postgres`, `all-data`).
    pub option: String,
    /// The deployment kind (`docker-compose`, `kubernetes`).
    pub deployment: String,
    /// One row per store and per deployment volume.
    pub stores: Vec<PlanStoreRow>,
    /// One decision per catalog row (what Sourcegraph keeps).
    pub items: Vec<PlannedItem>,
    /// One decision per deployment volume (all-data only).
    pub volumes: Vec<PlannedVolume>,
    /// Where the catalog disagrees with itself, and what the planner did.
    pub resolutions: Vec<Resolution>,
    /// Why the backup would be refused; empty when it can run.
    pub problems: Vec<PlanProblem>,
}

impl PlanReport {
    /// The report of `plan`; `location` says where each store would be read from.
    pub fn new(plan: &Plan, location: &dyn Fn(&str) -> Option<String>, problems: Vec<PlanProblem>) -> Self {
        let mut stores: Vec<PlanStoreRow> = plan
            .stores
            .iter()
            .map(|s| PlanStoreRow {
                store: s.id.to_string(),
                kind: kind_name(&s.kind),
                decision: kind_name(&s.decision),
                reason: s.reason.clone(),
                location: (s.decision == Decision::Included)
                    .then(|| location(&s.id))
                    .flatten(),
            })
            .collect();
        for v in &plan.volumes {
            let decision = match (&v.decision, &v.method) {
                (Decision::Skipped, _) => "skipped",
                (_, VolumeMethod::LogicalDump(_)) => "carried",
                _ => continue, // archived: a store row already
            };
            stores.push(PlanStoreRow {
                store: v.name.clone(),
                kind: "volume".into(),
                decision: decision.into(),
                reason: v.reason.clone(),
                location: None,
            });
        }
        PlanReport {
            command: "plan",
            ok: problems.is_empty(),
            option: kind_name(&plan.request.option),
            deployment: kind_name(&plan.request.deployment),
            stores,
            items: plan.items.clone(),
            volumes: plan.volumes.clone(),
            resolutions: plan.resolutions.clone(),
            problems,
        }
    }
}

impl fmt::Display for PlanReport {
    /// The stores, then the catalog rows, each with its decision and why; then the problems.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan: {} backup of a {} deployment (nothing was read or written)",
            self.option, self.deployment
        )?;
        let rows: Vec<Vec<String>> = self
            .stores
            .iter()
            .map(|s| {
                vec![
                    s.store.clone(),
                    s.kind.clone(),
                    s.location.clone().unwrap_or_default(),
                    format!("{}: {}", s.decision, s.reason),
                ]
            })
            .collect();
        f.write_str(&table(&["STORE", "KIND", "SOURCE", "DECISION"], &rows))?;
        writeln!(f)?;
        let rows: Vec<Vec<String>> = self
            .items
            .iter()
            .map(|i| {
                let id = i.catalog_id.as_str();
                vec![
                    catalog_entry(id).map_or(id, |e| e.item).to_string(),
                    format!("{}: {}", kind_name(&i.decision), i.reason),
                ]
            })
            .collect();
        f.write_str(&table(&["WHAT SOURCEGRAPH KEEPS", "DECISION"], &rows))?;
        for p in &self.problems {
            write!(f, "\nproblem: {p}")?;
        }
        if self.problems.is_empty() {
            write!(f, "\nthe backup can run as described")?;
        }
        Ok(())
    }
}
