//! What the export records in the manifest's store section, and the importer reads back.

use serde::{Deserialize, Serialize};

use crate::probe::ProbeReport;

/// Version of the [`PgStoreDetails`] layout.
pub const DETAILS_FORMAT: u32 = 1;

/// Artifact holding the [`SchemaDump`](crate::schema::SchemaDump) as JSON, for the importer.
pub const SCHEMA_JSON: &str = "schema.json.zst";
/// Artifact holding the pre-data DDL, for restores by hand.
pub const PRE_DATA_SQL: &str = "schema.pre-data.sql.zst";
/// Artifact holding the post-data DDL, for restores by hand.
pub const POST_DATA_SQL: &str = "schema.post-data.sql.zst";
/// Artifact holding one `setval` per sequence.
pub const SEQUENCES_SQL: &str = "sequences.sql.zst";
/// Artifact holding the shell script that restores the store with `zstd` and `psql` only.
pub const RESTORE_SH: &str = "restore.sh";

/// The Postgres store's section of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgStoreDetails {
    /// Layout version ([`DETAILS_FORMAT`]).
    pub format: u32,
    /// What the probe found about the source.
    pub probe: ProbeReport,
    /// Every table whose data was copied, with its artifacts.
    pub tables: Vec<TableRecord>,
    /// Tables whose data was left out, each with the reason.
    pub excluded: Vec<ExcludedTable>,
    /// How many sequence values were saved.
    pub sequences: usize,
    /// The options the export ran with.
    pub options: serde_json::Value,
}

/// One table's data in the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRecord {
    /// Identity of the table in the schema dump, e.g. `table public.repo`.
    pub identity: String,
    /// Schema (unquoted).
    pub schema: String,
    /// Name (unquoted).
    pub name: String,
    /// `"schema"."name"`, quoted.
    pub qualified_name: String,
    /// Quoted columns in the order of the COPY data.
    pub columns: Vec<String>,
    /// Data artifacts, in load order (one per ctid range when the table was split).
    pub artifacts: Vec<String>,
    /// Rows copied.
    pub rows: u64,
    /// Uncompressed COPY bytes.
    pub bytes: u64,
}

/// A table whose data was left out of the backup (its schema is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcludedTable {
    /// `"schema"."name"`, quoted.
    pub qualified_name: String,
    /// Why, as the exclusion rule said.
    pub reason: String,
}
