//! The catalog queries behind [`probe`](super::probe). They run on PostgreSQL 12 and newer and
//! check which columns Sourcegraph's bookkeeping tables have, since those changed across
//! versions.

use std::collections::BTreeMap;

use tokio_postgres::{Client, Row};

use sourcegraph_backup_core::model::Database;

use super::{
    database_of_migrations_table, migrations_table_name, ExtensionInfo, LegacyMigrationState,
    MigrationProblem, MigrationState, ProductVersion, TableKind, TableStats,
};
use crate::error::PgError;
use crate::sizes::table_sizes;
use crate::sql::{get, query_err};

async fn query(client: &Client, sql: &str, context: &str) -> Result<Vec<Row>, PgError> {
    client.query(sql, &[]).await.map_err(query_err(context))
}

pub(super) struct Server {
    pub database: String,
    pub version: String,
    pub version_num: i32,
    pub encoding: String,
    pub lc_collate: String,
    pub lc_ctype: String,
    pub database_bytes: i64,
}

pub(super) async fn server(client: &Client) -> Result<Server, PgError> {
    const CTX: &str = "reading the server version and database settings";
    let row = client
        .query_one(
            "SELECT current_database()::text, current_setting('server_version'), \
                    current_setting('server_version_num')::int, \
                    pg_encoding_to_char(d.encoding)::text, d.datcollate::text, \
                    d.datctype::text, pg_database_size(d.oid) \
             FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(query_err(CTX))?;
    let row = &row;
    Ok(Server {
        database: get(row, 0, CTX)?,
        version: get(row, 1, CTX)?,
        version_num: get(row, 2, CTX)?,
        encoding: get(row, 3, CTX)?,
        lc_collate: get(row, 4, CTX)?,
        lc_ctype: get(row, 5, CTX)?,
        database_bytes: get(row, 6, CTX)?,
    })
}

/// The table `name` as resolved through the search path, as quoted SQL text, if it exists.
pub(super) async fn regclass(client: &Client, name: &str) -> Result<Option<String>, PgError> {
    let ctx = format!("looking up table {name}");
    let row = client
        .query_one("SELECT to_regclass($1::text)::text", &[&name])
        .await
        .map_err(query_err(&ctx))?;
    get(&row, 0, &ctx)
}

/// The column names of `table` (quoted SQL text as returned by [`regclass`]).
async fn columns(client: &Client, table: &str) -> Result<Vec<String>, PgError> {
    let ctx = format!("reading the columns of {table}");
    let rows = client
        .query(
            "SELECT attname::text FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&table],
        )
        .await
        .map_err(query_err(&ctx))?;
    rows.iter().map(|r| get(r, 0, &ctx)).collect()
}

/// `expr` if `column` exists, else `fallback`.
fn column_or<'a>(cols: &[String], column: &str, expr: &'a str, fallback: &'a str) -> &'a str {
    if cols.iter().any(|c| c == column) {
        expr
    } else {
        fallback
    }
}

/// The applied set per schema, with Sourcegraph's ranking (`internal/database/migration/store`):
/// the latest row per version, non-backfilled rows first, newest `started_at` first; failed
/// reverts that finished are ignored.
pub(super) async fn migration_states(client: &Client, table: &str) -> Result<Vec<MigrationState>, PgError> {
    let cols = columns(client, table).await?;
    for required in ["schema", "version", "up", "success"] {
        if !cols.iter().any(|c| c == required) {
            // Not Sourcegraph's table after all, or a layout we do not know: report no state.
            return Ok(Vec::new());
        }
    }
    let mut order: Vec<&str> = Vec::new();
    if cols.iter().any(|c| c == "backfilled") {
        order.push("backfilled");
    }
    if cols.iter().any(|c| c == "started_at") {
        order.push("started_at DESC");
    }
    if cols.iter().any(|c| c == "id") {
        order.push("id DESC");
    }
    if order.is_empty() {
        order.push("version");
    }
    let error_message = column_or(&cols, "error_message", "error_message::text", "NULL::text");
    let failed_revert = column_or(
        &cols,
        "finished_at",
        "NOT (NOT up AND NOT success AND finished_at IS NOT NULL)",
        "true",
    );
    let sql = format!(
        "WITH ranked AS ( \
           SELECT schema, version, up, success, {error_message} AS error_message, \
                  ROW_NUMBER() OVER (PARTITION BY schema, version ORDER BY {order}) AS rn \
           FROM {table} WHERE {failed_revert}) \
         SELECT schema::text, version::bigint, up, success, error_message \
         FROM ranked WHERE rn = 1 ORDER BY schema, version",
        order = order.join(", ")
    );
    let ctx = format!("reading {table}");
    let rows = query(client, &sql, &ctx).await?;
    let mut by_schema: BTreeMap<String, MigrationState> = BTreeMap::new();
    for row in &rows {
        let schema_name: String = get(row, 0, &ctx)?;
        let version: i64 = get(row, 1, &ctx)?;
        let up: bool = get(row, 2, &ctx)?;
        let success: Option<bool> = get(row, 3, &ctx)?;
        let error_message: Option<String> = get(row, 4, &ctx)?;
        let state = by_schema
            .entry(schema_name.clone())
            .or_insert_with(|| MigrationState {
                schema: database_of_migrations_table(&schema_name),
                schema_name,
                applied_count: 0,
                latest_applied: None,
                failed: Vec::new(),
                pending: Vec::new(),
            });
        let problem = MigrationProblem {
            version,
            up,
            error_message,
        };
        match success {
            None => state.pending.push(problem),
            Some(false) => state.failed.push(problem),
            Some(true) if up => {
                state.applied_count += 1;
                state.latest_applied = state.latest_applied.max(Some(version));
            }
            Some(true) => {} // a successful revert: not applied
        }
    }
    // Known schemas first, in their fixed order, then anything else by name.
    let mut states: Vec<MigrationState> = by_schema.into_values().collect();
    states.sort_by_key(|s| {
        (
            s.schema
                .and_then(|k| Database::ALL.iter().position(|x| *x == k))
                .unwrap_or(usize::MAX),
            s.schema_name.clone(),
        )
    });
    Ok(states)
}

/// golang-migrate tables (`version`, `dirty` columns) of the three schemas.
pub(super) async fn legacy_migrations(client: &Client) -> Result<Vec<LegacyMigrationState>, PgError> {
    let mut out = Vec::new();
    for schema in Database::ALL {
        let name = migrations_table_name(schema);
        let Some(table) = regclass(client, name).await? else {
            continue;
        };
        let cols = columns(client, &table).await?;
        // Other tools (Rails, ...) also have a schema_migrations table, without `dirty`.
        if !(cols.iter().any(|c| c == "version") && cols.iter().any(|c| c == "dirty")) {
            continue;
        }
        let ctx = format!("reading legacy migration table {table}");
        let rows = query(
            client,
            &format!("SELECT version::bigint, dirty FROM {table} ORDER BY version DESC LIMIT 1"),
            &ctx,
        )
        .await?;
        let (version, dirty) = match rows.first() {
            Some(row) => (get(row, 0, &ctx)?, get(row, 1, &ctx)?),
            None => (None, None),
        };
        out.push(LegacyMigrationState {
            table: name.to_owned(),
            schema,
            version,
            dirty,
        });
    }
    Ok(out)
}

/// `versions` row of service `frontend`; columns differ across Sourcegraph versions.
pub(super) async fn product_version(client: &Client) -> Result<Option<ProductVersion>, PgError> {
    let Some(table) = regclass(client, "versions").await? else {
        return Ok(None);
    };
    let cols = columns(client, &table).await?;
    if !cols.iter().any(|c| c == "service") {
        return Ok(None);
    }
    let version = column_or(&cols, "version", "version::text", "NULL::text");
    let first = column_or(&cols, "first_version", "first_version::text", "NULL::text");
    let ctx = format!("reading the Sourcegraph version from {table}");
    let rows = query(
        client,
        &format!("SELECT {version}, {first} FROM {table} WHERE service = 'frontend'"),
        &ctx,
    )
    .await?;
    match rows.first() {
        Some(row) => Ok(Some(ProductVersion {
            version: get(row, 0, &ctx)?,
            first_version: get(row, 1, &ctx)?,
        })),
        None => Ok(None),
    }
}

pub(super) async fn extensions(client: &Client) -> Result<Vec<ExtensionInfo>, PgError> {
    const CTX: &str = "listing installed extensions";
    let rows = query(
        client,
        "SELECT e.extname::text, e.extversion::text, n.nspname::text \
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1",
        CTX,
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ExtensionInfo {
                name: get(r, 0, CTX)?,
                version: get(r, 1, CTX)?,
                schema: get(r, 2, CTX)?,
            })
        })
        .collect()
}

pub(super) async fn tables(client: &Client) -> Result<Vec<TableStats>, PgError> {
    const CTX: &str = "listing tables and their sizes";
    let rows = query(
        client,
        "SELECT n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8, \
                (SELECT e.extname::text FROM pg_depend d \
                   JOIN pg_extension e ON e.oid = d.refobjid \
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                    AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' LIMIT 1), \
                pg_catalog.format('%I.%I', n.nspname, c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
         ORDER BY 1, 2",
        CTX,
    )
    .await?;
    let names: Vec<String> = rows.iter().map(|r| get(r, 5, CTX)).collect::<Result<_, _>>()?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let sizes = table_sizes(client, &names).await?;
    rows.iter()
        .zip(sizes)
        .map(|(r, sizes)| {
            let kind: String = get(r, 2, CTX)?;
            // No sizes for a table dropped between the scan and the size call.
            let sizes = sizes.unwrap_or_default();
            let reltuples: f64 = get(r, 3, CTX)?;
            Ok(TableStats {
                schema: get(r, 0, CTX)?,
                name: get(r, 1, CTX)?,
                kind: if kind == "p" {
                    TableKind::Partitioned
                } else {
                    TableKind::Ordinary
                },
                total_bytes: sizes.total,
                relation_bytes: sizes.main_fork,
                // -1 (PostgreSQL 14+) means never vacuumed or analyzed.
                #[allow(clippy::cast_possible_truncation)]
                estimated_rows: (reltuples >= 0.0).then(|| reltuples.round() as i64),
                extension: get(r, 4, CTX)?,
            })
        })
        .collect()
}
