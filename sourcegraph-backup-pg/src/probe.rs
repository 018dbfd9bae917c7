//! What a database is, before anything is written: server, encoding, extensions, table sizes,
//! and which Sourcegraph schema it holds and how far it is migrated.
//!
//! Sourcegraph keeps its schema state in `migration_logs` (one table per database, rows per
//! schema: `schema_migrations` = frontend, `codeintel_schema_migrations`,
//! `codeinsights_schema_migrations`), older instances (before 3.37) in golang-migrate tables
//! `schema_migrations(version, dirty)`, and the product version in `versions` (frontend only).
//! A migration whose latest log row has `success = false` failed ("dirty database"); one with
//! `success IS NULL` is running or was interrupted. Restoring such a database reproduces that
//! state, so [`ProbeReport::warnings`] lists them.

mod queries;

use serde::{Deserialize, Serialize};

use sourcegraph_backup_core::model::Database;

use crate::error::PgError;
pub use crate::schema::ExtensionInfo;

/// The name of `database`'s schema in `migration_logs.schema`, which is also its legacy
/// golang-migrate table: `schema_migrations` (frontend), `codeintel_schema_migrations`,
/// `codeinsights_schema_migrations`.
pub fn migrations_table_name(database: Database) -> &'static str {
    match database {
        Database::Frontend => "schema_migrations",
        Database::CodeIntel => "codeintel_schema_migrations",
        Database::CodeInsights => "codeinsights_schema_migrations",
    }
}

/// The database whose schema `name` names in `migration_logs.schema` (the inverse of
/// [`migrations_table_name`]).
pub fn database_of_migrations_table(name: &str) -> Option<Database> {
    Database::ALL
        .into_iter()
        .find(|d| migrations_table_name(*d) == name)
}

/// Options of [`probe`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Accept a database that is not a Sourcegraph database (generic PostgreSQL backup).
    pub allow_generic: bool,
}

/// Whether a table is ordinary or partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableKind {
    /// `relkind = 'r'` (including partitions, which hold the rows).
    Ordinary,
    /// `relkind = 'p'`: holds no rows itself.
    Partitioned,
}

/// A table as the probe sees it: its kind, sizes, estimated rows and owning extension (the
/// schema extractor's [`TableInfo`](crate::schema::TableInfo) is what a backup dumps of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Ordinary or partitioned.
    pub kind: TableKind,
    /// `pg_total_relation_size`: heap, TOAST and indexes.
    pub total_bytes: i64,
    /// `pg_relation_size`: the main heap fork only.
    pub relation_bytes: i64,
    /// `reltuples` rounded; `None` when the table was never vacuumed or analyzed.
    pub estimated_rows: Option<i64>,
    /// The extension that owns the table (e.g. PostGIS's `spatial_ref_sys`), if any.
    pub extension: Option<String>,
}

/// A migration whose latest log row is not a success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationProblem {
    /// The migration id.
    pub version: i64,
    /// Whether it was an up (`true`) or down migration.
    pub up: bool,
    /// `error_message` of the log row, if any.
    pub error_message: Option<String>,
}

/// The state of one schema recorded in `migration_logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationState {
    /// `migration_logs.schema` as stored.
    pub schema_name: String,
    /// The database whose schema it is, if known ([`database_of_migrations_table`]).
    pub schema: Option<Database>,
    /// How many migrations are applied (latest log row up and successful).
    pub applied_count: usize,
    /// The highest applied migration id.
    pub latest_applied: Option<i64>,
    /// Migrations whose latest log row failed (`success = false`).
    pub failed: Vec<MigrationProblem>,
    /// Migrations in progress or interrupted (`success IS NULL`).
    pub pending: Vec<MigrationProblem>,
}

/// A golang-migrate table of instances before 3.37: `<name>(version bigint, dirty bool)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyMigrationState {
    /// The table name (`schema_migrations`, ...).
    pub table: String,
    /// The database whose schema it records.
    pub schema: Database,
    /// The recorded version, if the table has a row.
    pub version: Option<i64>,
    /// Whether the version is marked dirty (a failed migration).
    pub dirty: Option<bool>,
}

/// The Sourcegraph product version from `versions` (service `frontend`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductVersion {
    /// `versions.version`: the version last run against this database.
    pub version: Option<String>,
    /// `versions.first_version`: the version the instance was first deployed with.
    pub first_version: Option<String>,
}

/// Everything [`probe`] found out. Goes into the manifest's source section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `current_database()`.
    pub database: String,
    /// `server_version`, e.g. `15.8 (Debian 15.8-1.pgdg120+1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. 150008.
    pub server_version_num: i32,
    /// The major version, e.g. 15.
    pub major: i32,
    /// The database encoding, e.g. `UTF8`.
    pub encoding: String,
    /// `pg_database.datcollate` of this database.
    pub lc_collate: String,
    /// `pg_database.datctype` of this database.
    pub lc_ctype: String,
    /// `pg_database_size(current_database())`.
    pub database_bytes: i64,
    /// Installed extensions, by name.
    pub extensions: Vec<ExtensionInfo>,
    /// Ordinary and partitioned tables outside the system schemas, by schema and name.
    pub tables: Vec<TableStats>,
    /// Whether `migration_logs` exists.
    pub has_migration_logs: bool,
    /// One entry per schema recorded in `migration_logs`.
    pub migrations: Vec<MigrationState>,
    /// golang-migrate tables found (old instances).
    pub legacy_migrations: Vec<LegacyMigrationState>,
    /// The product version, when a `versions` table with a `frontend` row exists.
    pub product_version: Option<ProductVersion>,
    /// Whether this is a Sourcegraph database (`migration_logs` or a golang-migrate table).
    pub is_sourcegraph: bool,
}

impl ProbeReport {
    /// Which of Sourcegraph's databases this is, by the schema it records: the first one
    /// recorded in `migration_logs`, else the first legacy table's. A development database can
    /// hold several; see [`migrations`](Self::migrations).
    pub fn schema(&self) -> Option<Database> {
        self.migrations
            .iter()
            .find_map(|m| m.schema)
            .or_else(|| self.legacy_migrations.first().map(|l| l.schema))
    }

    /// The highest applied migration of [`schema`](Self::schema).
    pub fn latest_migration(&self) -> Option<i64> {
        let schema = self.schema()?;
        self.migrations
            .iter()
            .find(|m| m.schema == Some(schema))
            .and_then(|m| m.latest_applied)
            .or_else(|| {
                self.legacy_migrations
                    .iter()
                    .find(|l| l.schema == schema)
                    .and_then(|l| l.version)
            })
    }

    /// Whether any migration failed or is in progress (including dirty legacy tables).
    pub fn has_migration_problems(&self) -> bool {
        self.migrations
            .iter()
            .any(|m| !m.failed.is_empty() || !m.pending.is_empty())
            || self.legacy_migrations.iter().any(|l| l.dirty == Some(true))
    }

    /// Human-readable warnings: failed and pending migrations, dirty legacy tables, a generic
    /// database.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.is_sourcegraph {
            out.push(format!(
                "database {:?} is not a Sourcegraph database; it is handled as generic PostgreSQL",
                self.database
            ));
        }
        for m in &self.migrations {
            for p in &m.failed {
                let direction = if p.up { "up" } else { "down" };
                let msg = p.error_message.as_deref().unwrap_or("no error message recorded");
                out.push(format!(
                    "migration {} ({direction}) of schema {} failed: {msg}; Sourcegraph treats \
                     this database as dirty until the migration is fixed (migrator)",
                    p.version, m.schema_name
                ));
            }
            for p in &m.pending {
                out.push(format!(
                    "migration {} of schema {} is in progress or was interrupted \
                     (migration_logs.success IS NULL)",
                    p.version, m.schema_name
                ));
            }
        }
        for l in &self.legacy_migrations {
            if l.dirty == Some(true) {
                out.push(format!(
                    "legacy migration table {} is dirty at version {}",
                    l.table,
                    l.version.map_or_else(|| "?".to_owned(), |v| v.to_string())
                ));
            }
        }
        out
    }
}

/// Probes the database `client` is connected to. Refuses a non-Sourcegraph database with
/// [`PgError::NotSourcegraph`] unless `options.allow_generic`.
pub async fn probe(client: &tokio_postgres::Client, options: ProbeOptions) -> Result<ProbeReport, PgError> {
    let server = queries::server(client).await?;
    let migration_logs = queries::regclass(client, "migration_logs").await?;
    let migrations = match &migration_logs {
        Some(table) => queries::migration_states(client, table).await?,
        None => Vec::new(),
    };
    let legacy_migrations = queries::legacy_migrations(client).await?;
    let is_sourcegraph = migration_logs.is_some() || !legacy_migrations.is_empty();
    if !is_sourcegraph && !options.allow_generic {
        return Err(PgError::NotSourcegraph {
            database: server.database,
        });
    }
    let product_version = queries::product_version(client).await?;
    let extensions = queries::extensions(client).await?;
    let tables = queries::tables(client).await?;
    Ok(ProbeReport {
        database: server.database,
        server_version: server.version,
        server_version_num: server.version_num,
        major: server.version_num / 10000,
        encoding: server.encoding,
        lc_collate: server.lc_collate,
        lc_ctype: server.lc_ctype,
        database_bytes: server.database_bytes,
        extensions,
        tables,
        has_migration_logs: migration_logs.is_some(),
        migrations,
        legacy_migrations,
        product_version,
        is_sourcegraph,
    })
}
