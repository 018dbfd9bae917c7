//! Rendering a [`SchemaDump`] as SQL: pre-data script, post-data script, and post-data steps
//! for parallel execution.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::{ObjectKind, SchemaDump, SchemaObject, Section};
use crate::sql::{quote_ident, quote_literal};

/// How to render the DDL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderOptions {
    /// `server_version_num` of the target server (0: unknown).
    pub target_server_version_num: i32,
    /// Emit `ALTER ... OWNER TO` (roles must exist on the target).
    pub include_owners: bool,
    /// Emit `GRANT`s.
    pub include_acl: bool,
    /// Source role → target role, for owners and grants.
    pub role_map: BTreeMap<String, String>,
    /// Add `VERSION '...'` to `CREATE EXTENSION` (off: the target's default version, which
    /// is what a fresh install on that server gets; pinning can fail across majors).
    pub pin_extension_versions: bool,
    /// Identities of objects the target already has and the restoring role may not alter
    /// (an extension a provider's administrator created): rendered as nothing, neither created
    /// nor commented.
    pub leave_as_found: BTreeSet<String>,
}

/// One post-data statement group, for parallel execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostDataStep {
    /// Identity of the object.
    pub identity: String,
    /// The table (a [`TableInfo`](super::TableInfo) identity) whose data must be loaded
    /// before this step runs; for a partitioned table, all its partitions. `None`: run once
    /// all table data is loaded (e.g. materialized view refreshes and their indexes).
    pub table: Option<String>,
    /// What the step creates.
    pub kind: ObjectKind,
    /// The statements (run [`SchemaDump::session_setup_sql`] first on the connection).
    pub sql: String,
    /// Identities of post-data steps that must finish first (all within this list).
    pub depends_on: Vec<String>,
}

/// Session settings every connection applying this DDL runs first: no statement timeout,
/// fully qualified names (empty `search_path`), no function body checks.
const SESSION_SETUP: &str = "SET statement_timeout = 0;\n\
SET lock_timeout = 0;\n\
SET client_encoding = 'UTF8';\n\
SET standard_conforming_strings = on;\n\
SELECT pg_catalog.set_config('search_path', '', false);\n\
SET check_function_bodies = false;\n\
SET xmloption = content;\n\
SET client_min_messages = warning;\n\
SET row_security = off;\n";

/// A role as the target knows it: through the role map, or as it is.
pub(crate) fn mapped_role<'a>(role_map: &'a BTreeMap<String, String>, role: &'a str) -> &'a str {
    role_map.get(role).map(String::as_str).unwrap_or(role)
}

/// A `TO` list of roles (`None` is `PUBLIC`), each mapped and quoted.
pub(crate) fn role_list(roles: &[Option<String>], role_map: &BTreeMap<String, String>) -> String {
    roles
        .iter()
        .map(|r| match r {
            Some(r) => quote_ident(mapped_role(role_map, r)),
            None => "PUBLIC".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl SchemaDump {
    /// Session settings to run on every connection before executing any of this DDL.
    pub fn session_setup_sql() -> &'static str {
        SESSION_SETUP
    }

    /// The pre-data script: session setup, then extensions, schemas, types, functions,
    /// sequences, tables, views... in dependency order.
    pub fn pre_data_sql(&self, opts: &RenderOptions) -> String {
        let mut out = String::from(SESSION_SETUP);
        for o in self.section(Section::PreData) {
            out.push('\n');
            out += &self.render_object(o, opts);
        }
        out
    }

    /// The post-data script (constraints, indexes, triggers, policies...) as one sequential
    /// script, in dependency order.
    pub fn post_data_sql(&self, opts: &RenderOptions) -> String {
        let mut out = String::from(SESSION_SETUP);
        for o in self.section(Section::PostData) {
            out.push('\n');
            out += &self.render_object(o, opts);
        }
        out
    }

    /// The post-data statements as steps in dependency order, for parallel execution: a
    /// step may run once its table's data is loaded and its `depends_on` steps finished.
    pub fn post_data_steps(&self, opts: &RenderOptions) -> Vec<PostDataStep> {
        let post: HashSet<&str> = self
            .section(Section::PostData)
            .map(|o| o.identity.as_str())
            .collect();
        let tables: HashSet<&str> = self.tables.iter().map(|t| t.identity.as_str()).collect();
        self.section(Section::PostData)
            .map(|o| PostDataStep {
                identity: o.identity.clone(),
                table: o.table.clone().filter(|t| tables.contains(t.as_str())),
                kind: o.kind,
                sql: self.render_object(o, opts),
                depends_on: o
                    .depends_on
                    .iter()
                    .filter(|d| post.contains(d.as_str()))
                    .cloned()
                    .collect(),
            })
            .collect()
    }

    fn render_object(&self, o: &SchemaObject, opts: &RenderOptions) -> String {
        if opts.leave_as_found.contains(&o.identity) {
            return String::new();
        }
        let mut sql = o.sql.clone();
        if let Some(at) = o.roles_at {
            let original = role_list(&o.roles, &BTreeMap::new());
            if sql.get(at..at + original.len()) == Some(original.as_str()) {
                sql.replace_range(at..at + original.len(), &role_list(&o.roles, &opts.role_map));
            }
        }
        if o.kind == ObjectKind::Extension && opts.pin_extension_versions {
            if let Some(ext) = self.extensions.iter().find(|e| e.name == o.name) {
                let version = format!(" VERSION {};\n", quote_literal(&ext.version));
                if let Some(pos) = sql
                    .find(" WITH SCHEMA ")
                    .and_then(|p| sql[p..].find(";\n").map(|q| p + q))
                {
                    sql.replace_range(pos..pos + 2, &version);
                }
            }
        }
        let map = |role: &str| quote_ident(mapped_role(&opts.role_map, role));
        if opts.include_owners {
            if let (Some(owner), Some(target)) = (&o.owner, &o.alter_target) {
                sql += &format!("ALTER {target} OWNER TO {};\n", map(owner));
            }
        }
        if opts.include_acl {
            if let Some(target) = &o.grant_target {
                for a in &o.acl {
                    let grantee = a.grantee.as_deref().map(map).unwrap_or_else(|| "PUBLIC".into());
                    let option = if a.grantable { " WITH GRANT OPTION" } else { "" };
                    sql += &format!("GRANT {} ON {target} TO {grantee}{option};\n", a.privilege);
                }
            }
        }
        sql
    }
}
