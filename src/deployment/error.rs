//! What can go wrong when a deployment is planned, checked, backed up or restored.

use serde::Serialize;

use crate::core::{CoreError, StoreError};
use crate::report::Summary;

/// Why a backup plan cannot run as described (all of them are reported at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "problem")]
#[non_exhaustive]
pub enum PlanProblem {
    /// A store that is not recreatable (`pgsql`, or `config` while `pgsql` is backed up) has
    /// no source: no connection or directory was given, and it is not marked external.
    NotGiven {
        /// The store id.
        store: String,
    },
    /// A volume the plan archives has no directory: none was given, and the deployment's
    /// preset directory does not exist.
    VolumeWithoutDirectory {
        /// The volume name.
        volume: String,
    },
    /// A volume was given that the deployment does not have (not even as a further shard of
    /// one of its volumes, like `gitserver-1`).
    UnknownVolume {
        /// The volume name.
        volume: String,
    },
    /// A volume was given, but the backup option does not back up volumes (only all-data
    /// does).
    VolumeOutsideOption {
        /// The volume name.
        volume: String,
    },
    /// The plan includes no store at all.
    NothingToBackUp,
}

impl std::fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanProblem::NotGiven { store } if store == crate::core::model::CONFIG_STORE => write!(
                f,
                "{store} (the configuration, not recreatable) has no source: give its database or \
                 its files, or mark it external"
            ),
            PlanProblem::NotGiven { store } => write!(
                f,
                "{store} (not recreatable) has no connection: give one, or mark it external"
            ),
            PlanProblem::VolumeWithoutDirectory { volume } => write!(
                f,
                "volume {volume} has no directory: give its path, or mark it external"
            ),
            PlanProblem::UnknownVolume { volume } => {
                write!(f, "{volume} is not a volume of the deployment")
            }
            PlanProblem::VolumeOutsideOption { volume } => write!(
                f,
                "volume {volume} is given, but only an all-data backup holds volumes"
            ),
            PlanProblem::NothingToBackUp => f.write_str("nothing to back up: every store is left out"),
        }
    }
}

/// A restore that failed after it started: what it did is in the summary.
#[derive(Debug)]
#[non_exhaustive]
pub struct PartlyRestored {
    /// What was restored, what failed (with why), what was not started.
    pub summary: Box<Summary>,
    /// The stores whose restore failed.
    pub failed: Vec<String>,
    /// The stores that were restored before or beside the failure.
    pub restored: Vec<String>,
    /// The stores not started because an earlier phase failed.
    pub not_started: Vec<String>,
    /// The error of the first failed store.
    pub source: CoreError,
}

impl std::fmt::Display for PartlyRestored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "restore of {} failed", self.failed.join(", "))?;
        if !self.restored.is_empty() {
            write!(
                f,
                " after {} {} restored",
                self.restored.join(", "),
                if self.restored.len() == 1 { "was" } else { "were" }
            )?;
        }
        if !self.not_started.is_empty() {
            write!(f, "; not started: {}", self.not_started.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for PartlyRestored {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Errors of [`Instance`](super::Instance) and the plans it makes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeploymentError {
    /// A database connection could not be parsed or read from the environment.
    #[error("{what}: {source}")]
    Connection {
        /// Which connection (`pgsql`, `the configuration database`, ...).
        what: String,
        /// The parse error.
        #[source]
        source: crate::pg::PgError,
    },
    /// A volume given as `name=path` is not valid.
    #[error("{spec:?} is not NAME=PATH: {reason}")]
    VolumeSpec {
        /// What was given.
        spec: String,
        /// Why it is refused.
        reason: String,
    },
    /// The backup cannot run as described.
    #[error("the backup cannot run as described: {}", join(problems))]
    Plan {
        /// Every problem found.
        problems: Vec<PlanProblem>,
    },
    /// A restore target names a store the backup does not hold.
    #[error("backup {backup} holds no {what} {store}")]
    NotInBackup {
        /// The backup id.
        backup: String,
        /// `database`, `volume` or `configuration`.
        what: &'static str,
        /// The store id.
        store: String,
    },
    /// No target was given for any store of the backup.
    #[error("nothing to restore into: give a target for at least one store of backup {backup}")]
    NothingToRestore {
        /// The backup id.
        backup: String,
    },
    /// A source role is mapped to two different target roles.
    #[error("role {role} is mapped twice ({first} and {second}): give it once")]
    RoleMappedTwice {
        /// The source role.
        role: String,
        /// The first target.
        first: String,
        /// The second target.
        second: String,
    },
    /// Stores could not be reached, or restore targets are not fit (checked before anything
    /// is written).
    #[error("{}", failures.iter().map(with_causes).collect::<Vec<_>>().join("; "))]
    Preflight {
        /// One entry per store that failed its check, in store order.
        failures: Vec<CoreError>,
    },
    /// A restore failed part-way.
    #[error(transparent)]
    PartlyRestored(Box<PartlyRestored>),
    /// The repository, the pipeline or a store failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl DeploymentError {
    /// The store errors of a failed preflight, when that is what failed.
    pub fn preflight_failures(&self) -> &[CoreError] {
        match self {
            DeploymentError::Preflight { failures } => failures,
            _ => &[],
        }
    }
}

/// A preflight failure of store `store` at `location`.
pub(crate) fn check_failed(store: &str, location: &str, source: StoreError) -> CoreError {
    CoreError::Store {
        store: format!("{store} ({location})"),
        phase: "check",
        source,
    }
}

fn join(problems: &[PlanProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An error's text followed by those of its causes that it does not already contain.
pub(crate) fn with_causes(e: &CoreError) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
