//! Checks on the restore target, all before anything is written: compatibility, emptiness,
//! recorded Sourcegraph version; and the optional clean-up of a non-empty target.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::{privileges, PgImportOptions};
use crate::error::PgError;
use crate::layout::PgStoreDetails;
use crate::probe::{probe, ProbeOptions};
use crate::schema::{ObjectKind, SchemaDump};
use crate::sql::{query_err, quote_ident, quote_literal};

/// What the importer learned about the target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub database: String,
    pub server_version_num: i32,
    /// Objects the target has and the restoring role may not alter (see
    /// [`RenderOptions::leave_as_found`]).
    pub leave_as_found: BTreeSet<String>,
    /// The report's line about them.
    pub note: Option<String>,
}

/// Schemas the dump creates or fills.
pub(crate) fn dumped_schemas(dump: &SchemaDump) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = dump.tables.iter().map(|t| t.schema.clone()).collect();
    for o in &dump.objects {
        if o.kind == ObjectKind::Schema {
            out.insert(o.name.clone());
        } else if !o.schema.is_empty() {
            out.insert(o.schema.clone());
        }
    }
    out
}

/// Runs every check; fails before any write. With `clean_first`, a non-empty target is
/// emptied (only after all checks passed).
pub(crate) async fn prepare(
    client: &Client,
    dump: &SchemaDump,
    details: &PgStoreDetails,
    opts: &PgImportOptions,
) -> Result<Target, PgError> {
    let report = probe(client, ProbeOptions { allow_generic: true }).await?;
    let privileges = privileges::check(client, dump, &opts.render, report.server_version_num).await?;
    let target = Target {
        database: report.database.clone(),
        server_version_num: report.server_version_num,
        leave_as_found: privileges.leave_as_found,
        note: privileges.note,
    };
    let available: BTreeSet<String> = client
        .query("SELECT name::text FROM pg_catalog.pg_available_extensions", &[])
        .await
        .map_err(query_err("listing the target's available extensions"))?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .map_err(query_err("listing the target's available extensions"))?;
    let mut problems = dump
        .check_target(target.server_version_num, &available)
        .err()
        .unwrap_or_default();
    problems.extend(privileges.problems);
    if !problems.is_empty() {
        return Err(PgError::IncompatibleTarget {
            database: target.database,
            problems: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }

    let schemas: Vec<String> = dumped_schemas(dump).into_iter().collect();
    let existing: Vec<String> = client
        .query(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p','v','m','S','f') \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                               WHERE d.classid = 'pg_catalog.pg_class'::regclass \
                                 AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1",
            &[&schemas],
        )
        .await
        .map_err(query_err("listing relations already in the target"))?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .map_err(query_err("listing relations already in the target"))?;
    if existing.is_empty() {
        return Ok(target);
    }
    if !opts.clean_first {
        return Err(PgError::TargetNotEmpty {
            database: target.database,
            count: existing.len(),
            examples: existing.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
        });
    }
    let backup_version = details
        .probe
        .product_version
        .as_ref()
        .and_then(|v| v.version.clone());
    let target_version = report.product_version.as_ref().and_then(|v| v.version.clone());
    if let (Some(t), Some(b)) = (&target_version, &backup_version) {
        if t != b && !opts.force {
            return Err(PgError::VersionMismatch {
                database: target.database,
                target: t.clone(),
                backup: b.clone(),
            });
        }
    }
    // Dropping a schema drops everything in it, an administrator's extension too, which this
    // role could not create again.
    let kept: Vec<&str> = dump
        .objects
        .iter()
        .filter(|o| target.leave_as_found.contains(&o.identity))
        .map(|o| o.identity.as_str())
        .collect();
    if !kept.is_empty() {
        return Err(PgError::IncompatibleTarget {
            database: target.database,
            problems: format!(
                "`--clean` would drop {} with the schemas that hold them, and this role does not \
                 own them and could not create them again; restore into a new empty database \
                 instead (its owner can have the extensions created first)",
                kept.join(", ")
            ),
        });
    }
    clean(client, dump, &schemas, target.server_version_num).await?;
    Ok(target)
}

/// Drops the dumped extensions and schemas (recreating an empty `public`), in one transaction.
async fn clean(client: &Client, dump: &SchemaDump, schemas: &[String], version: i32) -> Result<(), PgError> {
    let mut sql = String::from("BEGIN;\nSET LOCAL client_min_messages = warning;\n");
    for e in &dump.extensions {
        sql += &format!("DROP EXTENSION IF EXISTS {} CASCADE;\n", quote_ident(&e.name));
    }
    for s in schemas {
        sql += &format!("DROP SCHEMA IF EXISTS {} CASCADE;\n", quote_ident(s));
    }
    if schemas.iter().any(|s| s == "public") {
        // Recreate `public` as initdb leaves it, so the restored schema matches a fresh one.
        sql += "CREATE SCHEMA public;\n";
        sql += &format!(
            "COMMENT ON SCHEMA public IS {};\n",
            quote_literal("standard public schema")
        );
        if version >= 150_000 {
            sql += "ALTER SCHEMA public OWNER TO pg_database_owner;\n\
                    GRANT USAGE ON SCHEMA public TO PUBLIC;\n";
        } else {
            sql += "GRANT ALL ON SCHEMA public TO PUBLIC;\n";
        }
    }
    sql += "COMMIT;\n";
    client
        .batch_execute(&sql)
        .await
        .map_err(|source| PgError::Restore {
            what: "cleaning the target (`--clean`)".into(),
            source,
        })
}
