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

/// Version of the [`PgStoreDetails`] layout.
pub const DETAILS_FORMAT: u32 = 1;

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
mod tests {
    use super::*;

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
