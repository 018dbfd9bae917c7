//! Target compatibility: which objects a target server cannot express, and which extensions
//! it lacks, reported before anything is written.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::SchemaDump;

/// Something the target cannot restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// An extension the schema uses is not installed on the target, and the restoring role
    /// may not create it (not a superuser, and the extension is not trusted or the role lacks
    /// `CREATE` on the database).
    ExtensionNotCreatable {
        /// Extension name.
        name: String,
        /// The schema it belongs in.
        schema: String,
        /// The restoring role.
        role: String,
    },
    /// An extension is installed on the target in another schema than the backup expects.
    ExtensionInOtherSchema {
        /// Extension name.
        name: String,
        /// Its schema in the source.
        source_schema: String,
        /// Its schema on the target.
        target_schema: String,
    },
    /// A role that a policy, an owner or a grant names does not exist on the target.
    MissingRole {
        /// The role as the target would know it (after the role map).
        role: String,
        /// The first object that needs it, e.g. `policy public.repo.p`.
        needed_by: String,
    },
    /// Restored objects would be given to an owner the restoring role may not give them to
    /// (it is not a member of that role).
    CannotAssignOwner {
        /// The owner (after the role map).
        role: String,
        /// The restoring role.
        restoring_role: String,
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
            Incompatibility::ExtensionNotCreatable { name, schema, role } => write!(
                f,
                "extension {name} is not installed on the target and role {role} may not create \
                 it: have an administrator run `CREATE EXTENSION {name} WITH SCHEMA {schema}` in \
                 the target database (managed providers offer this), then restore again"
            ),
            Incompatibility::ExtensionInOtherSchema {
                name,
                source_schema,
                target_schema,
            } => write!(
                f,
                "extension {name} is installed in schema {target_schema} on the target, but the \
                 backup's objects expect it in schema {source_schema}"
            ),
            Incompatibility::MissingRole { role, needed_by } => write!(
                f,
                "role {role} does not exist on the target (needed by {needed_by}): create it, or \
                 map it to an existing role with `--role-map {role}=ROLE`"
            ),
            Incompatibility::CannotAssignOwner { role, restoring_role } => write!(
                f,
                "role {restoring_role} may not make {role} the owner of restored objects (it is \
                 not a member of {role}): grant {role} to {restoring_role}, map it with \
                 `--role-map`, or restore without `--owners` (everything then belongs to \
                 {restoring_role})"
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
