//! # sourcegraph-backup-core
//!
//! Everything in sourcegraph-backup that is not specific to one kind of store:
//!
//! - the traits other programs embed: [`DataStore`], [`Exporter`], [`Importer`];
//! - the [`BackupRepository`]: backups as prefixes of an `object_store`, with
//!   streamed, checksummed artifacts and a [`BackupManifest`] written last;
//! - the [`catalog`] of what Sourcegraph keeps and the [`mod@plan`]ner that decides
//!   what a backup includes;
//! - [`ProgressEvent`]s for progress bars; and the [`pipeline`] that runs a plan.
//!
//! Data flows one way: source → exporter → backup repository → importer → target.
//!
//! ```
//! use bytes::Bytes;
//! use sourcegraph_backup_core::{ArtifactOptions, BackupOption, BackupRepository, StoreKind, StoreSection};
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let repo = BackupRepository::local(dir.path())?;
//! let backup = repo.start_backup(BackupOption::ConfigOnly);
//! let mut artifact = backup.artifact("config", "site.jsonc", ArtifactOptions::plain("application/jsonc")).await?;
//! artifact.write(Bytes::from_static(b"{ // comments survive\n}")).await?;
//! artifact.finish().await?;
//! let section = StoreSection {
//!     id: "config".into(), kind: StoreKind::Config, catalog: vec![],
//!     details: serde_json::Value::Null, warnings: vec![],
//! };
//! backup.commit(vec![section], None, Default::default(), vec![]).await?;
//!
//! let latest = repo.open_latest().await?;
//! assert!(repo.verify(latest.id()).await?.is_ok());
//! # Ok(()) }
//! ```

pub mod catalog;
mod error;
pub mod manifest;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod repository;
pub mod store;

pub use catalog::{CatalogEntry, Deployment, Recreatable, CATALOG};
pub use error::{BoxError, CoreError, StoreError, StoreErrorKind};
pub use manifest::{ArtifactRecord, BackupManifest, Compression, SourceInfo, StoreManifest, FORMAT_VERSION};
pub use plan::{plan, BackupOption, Decision, Plan, PlanRequest};
pub use progress::{ProgressEvent, ProgressSink};
pub use repository::{
    forget, ArtifactOptions, ArtifactReader, ArtifactWriter, BackupReader, BackupRepository, BackupSummary,
    BackupWriter, BlockingArtifactWriter, ForgetReport, OpenOptions, RetentionPolicy, StoreSection,
    VerifyReport,
};
pub use store::{
    DataStore, ExportContext, ExportReport, Exporter, ImportContext, ImportReport, Importer, StoreKind,
};
