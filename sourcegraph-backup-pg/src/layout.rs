//! The layout of a Postgres store in a backup, which the export writes and the import reads:
//! the artifact names, the names of the data files, and the store details recorded in the
//! manifest ([`PgStoreDetails`]).
//!
//! Table names are never trusted as paths: in a data file's name every byte outside
//! `[A-Za-z0-9_-]` is written as `+HH` (so `.` separates schema, table and part unambiguously
//! and no name can escape the `data/` directory). `%` and `~` are avoided because object
//! stores re-encode them.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::error::PgError;
use crate::probe::ProbeReport;

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

/// Version of the [`PgStoreDetails`] layout this release writes, and the newest it reads.
pub const DETAILS_FORMAT: u32 = 1;

/// The format of details that record none (none were ever written without one; read as 1).
fn unversioned_format() -> u32 {
    1
}

/// The Postgres store's section of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgStoreDetails {
    /// Layout version ([`DETAILS_FORMAT`]); details without one read as 1.
    #[serde(default = "unversioned_format")]
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

impl PgStoreDetails {
    /// Reads the details of store `store` back from its manifest section. The format is
    /// checked before anything else is read: a newer one (written by a newer release) is
    /// refused with [`PgError::NewerFormat`], naming the store, rather than misread; details
    /// without a `format` read as format 1. Other defects are [`PgError::MalformedBackup`].
    pub fn from_manifest(store: &str, details: &serde_json::Value) -> Result<Self, PgError> {
        /// Only the format, so that a newer layout is refused rather than misread.
        #[derive(Deserialize)]
        struct Format {
            #[serde(default = "unversioned_format")]
            format: u32,
        }
        let malformed = |e: serde_json::Error| PgError::MalformedBackup {
            store: store.to_string(),
            reason: format!("the manifest's store details: {e}"),
        };
        let Format { format } = Format::deserialize(details).map_err(malformed)?;
        if format > DETAILS_FORMAT {
            return Err(PgError::NewerFormat {
                store: store.to_string(),
                found: format,
                supported: DETAILS_FORMAT,
            });
        }
        PgStoreDetails::deserialize(details).map_err(malformed)
    }

    /// The details as the manifest records them.
    pub fn to_manifest(&self, store: &str) -> Result<serde_json::Value, PgError> {
        serde_json::to_value(self).map_err(|e| PgError::Serialize {
            store: store.to_string(),
            what: "manifest details",
            reason: e.to_string(),
        })
    }
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

/// Longest encoded schema or table component kept in a file name (file systems cap a name at
/// 255 bytes); longer ones are cut and made unique with the table's index.
const MAX_COMPONENT: usize = 100;

/// Encodes one name component for an artifact path.
fn encode_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

/// Cuts an encoded component at a char boundary that does not split a `+HH` escape.
fn cut(encoded: &str) -> &str {
    let mut end = MAX_COMPONENT.min(encoded.len());
    while end > 0 && encoded.as_bytes().get(end.saturating_sub(1)) == Some(&b'+') {
        end -= 1;
    }
    if end >= 2 && encoded.as_bytes().get(end - 2) == Some(&b'+') {
        end -= 2;
    }
    &encoded[..end]
}

/// `data/<schema>.<table>.<part>.copy` (+ the compression suffix), unique per table index.
pub(crate) fn data_artifact(schema: &str, table: &str, index: usize, part: usize, suffix: &str) -> String {
    let (s, t) = (encode_component(schema), encode_component(table));
    if s.len() > MAX_COMPONENT || t.len() > MAX_COMPONENT {
        format!("data/{}.{}.t{index}.{part:04}.copy{suffix}", cut(&s), cut(&t))
    } else {
        format!("data/{s}.{t}.{part:04}.copy{suffix}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sourcegraph_backup_core::model::Database;
    use sourcegraph_backup_core::StoreErrorKind;

    /// The details of a `codeintel-db` store as the releases before typed details wrote them.
    const OLD_DETAILS: &str = r#"{
      "format": 1,
      "probe": {
        "database": "sg", "server_version": "16.4", "server_version_num": 160004, "major": 16,
        "encoding": "UTF8", "lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8",
        "database_bytes": 8000000,
        "extensions": [{"name": "plpgsql", "version": "1.0", "schema": "pg_catalog"}],
        "tables": [{"schema": "public", "name": "lsif_uploads", "kind": "ordinary",
                    "total_bytes": 16384, "relation_bytes": 8192, "estimated_rows": null,
                    "extension": null}],
        "has_migration_logs": true,
        "migrations": [
          {"schema_name": "codeintel_schema_migrations", "schema": "code-intel",
           "applied_count": 3, "latest_applied": 1000000002, "failed": [], "pending": []},
          {"schema_name": "schema_migrations", "schema": "frontend",
           "applied_count": 1, "latest_applied": 1, "failed": [], "pending": []},
          {"schema_name": "codeinsights_schema_migrations", "schema": "code-insights",
           "applied_count": 1, "latest_applied": 7, "failed": [], "pending": []},
          {"schema_name": "other", "schema": null,
           "applied_count": 1, "latest_applied": 1, "failed": [], "pending": []}
        ],
        "legacy_migrations": [{"table": "codeintel_schema_migrations", "schema": "code-intel",
                               "version": 1000000002, "dirty": false}],
        "product_version": null,
        "is_sourcegraph": true
      },
      "tables": [{"identity": "table public.lsif_uploads", "schema": "public",
                  "name": "lsif_uploads", "qualified_name": "public.lsif_uploads",
                  "columns": ["id"], "artifacts": ["data/public.lsif_uploads.0000.copy.zst"],
                  "rows": 2, "bytes": 4}],
      "excluded": [],
      "sequences": 1,
      "options": {"jobs": 0}
    }"#;

    #[test]
    fn old_details_read_back_with_their_schemas() {
        let value: serde_json::Value = serde_json::from_str(OLD_DETAILS).unwrap();
        let details = PgStoreDetails::from_manifest("codeintel-db", &value).unwrap();
        assert_eq!(details.format, 1);
        assert_eq!(details.probe.schema(), Some(Database::CodeIntel));
        let schemas: Vec<_> = details.probe.migrations.iter().map(|m| m.schema).collect();
        assert_eq!(
            schemas,
            vec![
                Some(Database::CodeIntel),
                Some(Database::Frontend),
                Some(Database::CodeInsights),
                None
            ]
        );
        assert_eq!(details.probe.legacy_migrations[0].schema, Database::CodeIntel);
        assert_eq!(details.probe.latest_migration(), Some(1000000002));
        // Written back, the schemas keep their spelling.
        let again = details.to_manifest("codeintel-db").unwrap();
        assert_eq!(again["probe"]["migrations"], value["probe"]["migrations"]);
        assert_eq!(
            again["probe"]["legacy_migrations"],
            value["probe"]["legacy_migrations"]
        );
        assert_eq!(
            PgStoreDetails::from_manifest("codeintel-db", &again).unwrap(),
            details
        );
    }

    #[test]
    fn details_without_a_format_read_as_format_1() {
        let mut value: serde_json::Value = serde_json::from_str(OLD_DETAILS).unwrap();
        value.as_object_mut().unwrap().remove("format");
        let details = PgStoreDetails::from_manifest("codeintel-db", &value).unwrap();
        assert_eq!(details.format, 1);
    }

    #[test]
    fn a_newer_format_is_refused_naming_the_store_before_its_layout_is_read() {
        let newer = serde_json::json!({ "format": DETAILS_FORMAT + 1, "tables": "a new layout" });
        let err = PgStoreDetails::from_manifest("codeintel-db", &newer).unwrap_err();
        assert!(
            matches!(err, PgError::NewerFormat { ref store, found, supported }
                if store == "codeintel-db" && found == DETAILS_FORMAT + 1 && supported == DETAILS_FORMAT),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("codeintel-db") && message.contains("newer release"),
            "{message}"
        );
        assert!(message.contains("upgrade sourcegraph-backup"), "{message}");
        assert_eq!(err.kind(), StoreErrorKind::CorruptBackup);

        let broken = serde_json::json!({ "format": 1, "tables": "not a list" });
        let err = PgStoreDetails::from_manifest("pgsql", &broken).unwrap_err();
        assert!(matches!(err, PgError::MalformedBackup { .. }), "{err:?}");
    }

    #[test]
    fn names_are_safe_and_distinct() {
        assert_eq!(
            data_artifact("public", "repo", 0, 0, ".zst"),
            "data/public.repo.0000.copy.zst"
        );
        let odd = data_artifact("we\"ird sch", "../x/y", 1, 2, "");
        assert_eq!(odd, "data/we+22ird+20sch.+2E+2E+2Fx+2Fy.0002.copy");
        assert!(!odd[5..].contains('/'));
        assert_ne!(
            data_artifact("a.b", "c", 0, 0, ""),
            data_artifact("a", "b.c", 1, 0, "")
        );
        let long = "é".repeat(60);
        let name = data_artifact("public", &long, 7, 0, "");
        assert!(name.len() < 200, "{name}");
        assert!(name.contains(".t7."));
        assert!(!name.contains("+.") && !name.contains("+C."));
    }
}
