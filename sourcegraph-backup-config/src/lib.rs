//! # sourcegraph-backup-config
//!
//! The configuration store of sourcegraph-backup: the three kinds of JSONC documents that cannot
//! be recreated and that every migration needs — the **site configuration**, the **global
//! settings** and one document per **code host connection** — read from a Sourcegraph frontend
//! database or from the files Sourcegraph loads at start-up (`SITE_CONFIG_FILE`,
//! `GLOBAL_SETTINGS_FILE`, `EXTSVC_CONFIG_FILE`), kept byte for byte, and re-applied as safely as
//! the web UI does it.
//!
//! - [`ConfigSnapshot`] / [`ConfigDocument`]: the model. Texts are never normalised (comments,
//!   trailing commas, key order, whitespace, CRLF, non-ASCII survive). `Debug` and `Display`
//!   show kind, name, length and sha256, never the text.
//! - Sources: [`ConfigSnapshot::from_database`] (one `REPEATABLE READ READ ONLY` transaction, every
//!   schema generation from 3.x to 7.x, tenants and row-level security) and
//!   [`ConfigSnapshot::from_files`].
//! - [`redact`]: the redacted view Sourcegraph's UI shows; every diff and report uses it.
//!   [`find_redacted_secrets`] catches documents copied from the API, whose secrets were replaced
//!   by `REDACTED`: a backup reports each such field in its warnings, and importing them (into a
//!   database or files) is refused, naming the field.
//! - [`ConfigImporter`]: validation before any write, an [`ImportPlan`] with unified diffs of the
//!   redacted texts, new revisions in one transaction with optimistic concurrency, dry runs.
//! - [`ConfigStore`]: the `DataStore` + `Exporter` + `Importer` of the backup pipeline (store id
//!   `config`): each document is its own artifact, plus copies to paste into the web UI and the
//!   three start-up files. A restore into files refuses target files that exist unless
//!   [`ImportOptions::overwrite`] (command line `--clean`), and writes them private: `0600`, new
//!   directories `0700`, whatever the umask.
//! - Input files are read only when they are regular files (symbolic links followed) of at most
//!   [`files::MAX_CONFIG_FILE_SIZE`] (16 MiB); a device, FIFO or larger file is refused, naming it.
//!
//! User and organisation settings are **not** configuration JSON here: they are rows of the
//! `settings` table tied to users and orgs, and travel with the Postgres backup of the frontend
//! database. So do user- or org-owned code host connections of old versions.
//!
//! ```no_run
//! use sourcegraph_backup_config::{ConfigImporter, ConfigSnapshot, DatabaseSourceOptions, ImportOptions};
//! use sourcegraph_backup_pg::PgConnectionConfig;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let old = PgConnectionConfig::from_url("postgres://sg@old-db:5432/sg")?;
//! let snapshot = ConfigSnapshot::from_database(&old, &DatabaseSourceOptions::default()).await?;
//! println!("{snapshot}"); // names, sizes and hashes; no secrets
//!
//! let new = PgConnectionConfig::from_url("postgres://sg@new-db:5432/sg")?;
//! let importer = ConfigImporter::new(new, ImportOptions::default());
//! let plan = importer.plan(&snapshot).await?; // validates; writes nothing
//! println!("{plan}"); // per document: Create / Update / Unchanged, with redacted diffs
//! importer.apply(&plan).await?; // fails cleanly if the target changed since the plan
//! # Ok(()) }
//! ```

pub mod db;
mod error;
pub mod files;
pub mod jsonc;
pub mod keys;
pub mod layout;
mod model;
pub mod redact;
mod report;
mod store;
pub mod validate;

pub use db::{
    apply_import, import_with_client, plan_import, ChangeSummary, ConfigImporter, DatabaseSourceOptions,
    ImportOptions, ImportOutcome, ImportPlan, PlanAction, PlannedChange,
};
pub use error::ConfigError;
pub use files::ConfigFilePaths;
pub use keys::{encryption_keys, EncryptionKeyRef};
pub use layout::{ConfigDetails, DocumentEntry, DETAILS_FORMAT};
pub use model::{ConfigDocument, ConfigSnapshot, DocumentKind, EncryptedValue, Provenance};
pub use redact::{find_redacted_secrets, redacted_text};
pub use report::{DatabaseImportDetails, DocumentDiff, FilesImportDetails};
pub use store::{ConfigLocation, ConfigStore, STORE_ID};
