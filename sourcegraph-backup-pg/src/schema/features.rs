//! Target compatibility: which objects a target server cannot express, and which extensions
//! it lacks, reported before anything is written.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::SchemaDump;

/// Something the target cannot restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Incompatibility {
    /// An object needs a newer server than the target.
    ServerTooOld {
        /// Identity of the object, e.g. `table public.v` for a `security_invoker` view.
        identity: String,
        /// The lowest `server_version_num` that can express it.
        min_server_version: i32,
        /// The target's `server_version_num`.
        target_server_version: i32,
    },
    /// An extension the schema uses is not available on the target.
    MissingExtension {
        /// Extension name.
        name: String,
        /// Version installed in the source.
        source_version: String,
    },
}

impl std::fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incompatibility::ServerTooOld {
                identity,
                min_server_version,
                target_server_version,
            } => write!(
                f,
                "{identity} needs PostgreSQL server_version_num >= {min_server_version}, \
                 the target is {target_server_version}"
            ),
            Incompatibility::MissingExtension { name, source_version } => write!(
                f,
                "extension {name} (version {source_version} in the source) is not available on the target"
            ),
        }
    }
}

impl SchemaDump {
    /// Checks that a target server of `target_version_num` with the given available
    /// extensions (names from `pg_available_extensions`) can restore this schema; returns
    /// every problem found. Optional extensions (`pg_stat_statements`) are not required.
    pub fn check_target(
        &self,
        target_version_num: i32,
        target_available_extensions: &BTreeSet<String>,
    ) -> Result<(), Vec<Incompatibility>> {
        let mut problems: Vec<Incompatibility> = self
            .objects
            .iter()
            .filter(|o| o.min_server_version > target_version_num)
            .map(|o| Incompatibility::ServerTooOld {
                identity: o.identity.clone(),
                min_server_version: o.min_server_version,
                target_server_version: target_version_num,
            })
            .collect();
        problems.extend(
            self.extensions
                .iter()
                .filter(|e| !target_available_extensions.contains(&e.name))
                .filter(|e| !super::types::OPTIONAL_EXTENSIONS.contains(&e.name.as_str()))
                .map(|e| Incompatibility::MissingExtension {
                    name: e.name.clone(),
                    source_version: e.version.clone(),
                }),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
