//! What an import of the configuration did: the details of the [`ImportReport`]s of
//! [`ConfigStore`](crate::ConfigStore), one struct per kind of target. No text, no secret: diffs
//! are of the redacted texts.
//!
//! [`ImportReport`]: sourcegraph_backup_core::ImportReport

use serde::{Deserialize, Serialize};

use crate::db::ChangeSummary;

/// An import into a frontend database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseImportDetails {
    /// The database (endpoint, no password).
    pub target: String,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Rows written (0 for a dry run or when everything was unchanged).
    pub written: usize,
    /// Every document with what happened to it.
    pub changes: Vec<ChangeSummary>,
    /// The documents whose text differs, with the diff of the redacted texts.
    pub diffs: Vec<DocumentDiff>,
}

/// One document's diff (target → backup) of the redacted texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentDiff {
    /// The document's name.
    pub document: String,
    /// The unified diff.
    pub diff: String,
}

/// An import into the start-up files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesImportDetails {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// `SITE_CONFIG_FILE` (paths joined by `:`).
    pub site_config_file: String,
    /// `GLOBAL_SETTINGS_FILE`, when given.
    pub global_settings_file: Option<String>,
    /// `EXTSVC_CONFIG_FILE`, when given.
    pub extsvc_config_file: Option<String>,
    /// The files written (or, in a dry run, to write).
    pub files: Vec<String>,
    /// The files that existed and were (or would be) replaced.
    pub replaced: Vec<String>,
}
