//! The traits other programs embed: [`DataStore`], [`Exporter`], [`Importer`].
//!
//! A store crate (Postgres, configuration, volumes) implements them for its
//! kind of store; the [`crate::pipeline`] holds them as trait objects, so one
//! backup can mix stores of every kind.

pub use crate::model::StoreKind;
use async_trait::async_trait;

use crate::error::CoreError;
use crate::error::StoreError;
use crate::manifest::ArtifactRecord;
use crate::manifest::{BackupManifest, SourceInfo, StoreManifest};
use crate::model::CatalogId;
use crate::progress::ProgressSink;
use crate::repository::{ArtifactOptions, ArtifactReader, ArtifactWriter, BackupReader, BackupWriter};

/// A named place that holds Sourcegraph data.
#[async_trait]
pub trait DataStore: Send + Sync + std::fmt::Debug {
    /// The store id, unique within a backup (`pgsql`, `config`, `gitserver-0`).
    fn id(&self) -> &str;

    /// Which kind of store this is.
    fn kind(&self) -> StoreKind;

    /// The catalog rows or deployment volume this store carries.
    fn catalog(&self) -> Vec<CatalogId> {
        Vec::new()
    }

    /// How to reach it, for people: never contains a password or token.
    fn location(&self) -> String;

    /// Checks that the store can be reached (connect, stat), without changing it.
    async fn check_reachable(&self) -> Result<(), StoreError>;
}

/// Writes one store's data as artifacts into a backup being written.
#[async_trait]
pub trait Exporter: DataStore {
    /// Exports the store. Artifacts are created through `ctx`; the returned
    /// report becomes the store's section of the manifest.
    async fn export(&self, ctx: ExportContext) -> Result<ExportReport, StoreError>;
}

/// Reads a store's artifacts from a committed backup into a target.
#[async_trait]
pub trait Importer: DataStore {
    /// Imports the store's artifacts from `ctx` into this target.
    async fn import(&self, ctx: ImportContext) -> Result<ImportReport, StoreError>;
}

/// What an exporter reports when it is done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportReport {
    /// Store-specific facts for the manifest (probe, tables, file counts, ...).
    pub details: serde_json::Value,
    /// Conditions a restorer should know.
    pub warnings: Vec<String>,
    /// What the store found about the source (product and schema version).
    pub source: SourceInfo,
}

/// What an importer reports when it is done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Store-specific facts (tables loaded, documents written, ...).
    pub details: serde_json::Value,
    /// Conditions the operator should know (e.g. "run Sourcegraph 5.9.0 first").
    pub warnings: Vec<String>,
    /// Bytes read from the backup.
    pub bytes: u64,
}

/// The handle an exporter writes its artifacts through.
#[derive(Debug, Clone)]
pub struct ExportContext {
    store: String,
    backup: BackupWriter,
    progress: ProgressSink,
}

impl ExportContext {
    /// A context for store `store` of `backup`.
    pub fn new(store: impl Into<String>, backup: BackupWriter, progress: ProgressSink) -> Self {
        ExportContext {
            store: store.into(),
            backup,
            progress,
        }
    }

    /// The store id being exported.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The backup id.
    pub fn backup_id(&self) -> &str {
        self.backup.id()
    }

    /// Starts a streamed artifact `<store>/<name>`.
    pub async fn artifact(&self, name: &str, options: ArtifactOptions) -> Result<ArtifactWriter, CoreError> {
        self.backup.artifact(&self.store, name, options).await
    }

    /// Writes a small artifact in one call (documents, schema text).
    pub async fn put_artifact(
        &self,
        name: &str,
        options: ArtifactOptions,
        data: bytes::Bytes,
    ) -> Result<ArtifactRecord, CoreError> {
        let mut w = self.artifact(name, options).await?;
        w.write(data).await?;
        w.finish().await
    }

    /// The progress sink.
    pub fn progress(&self) -> &ProgressSink {
        &self.progress
    }
}

/// The handle an importer reads its artifacts through.
#[derive(Debug, Clone)]
pub struct ImportContext {
    store: String,
    store_manifest: StoreManifest,
    backup: BackupReader,
    progress: ProgressSink,
}

impl ImportContext {
    /// A context for store `store` of a committed backup. Fails when the
    /// backup has no such store.
    pub fn new(
        store: impl Into<String>,
        backup: BackupReader,
        progress: ProgressSink,
    ) -> Result<Self, CoreError> {
        let store = store.into();
        let Some(store_manifest) = backup.manifest().store(&store).cloned() else {
            return Err(CoreError::UnknownStore {
                store,
                backup: backup.id().to_string(),
            });
        };
        Ok(ImportContext {
            store,
            store_manifest,
            backup,
            progress,
        })
    }

    /// The store's section of the manifest.
    pub fn store_manifest(&self) -> &StoreManifest {
        &self.store_manifest
    }

    /// The whole manifest.
    pub fn manifest(&self) -> &BackupManifest {
        self.backup.manifest()
    }

    /// The store id.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Opens an artifact of this store by name; it is verified while read.
    pub fn open(&self, name: &str) -> Result<ArtifactReader, CoreError> {
        let record = self
            .store_manifest()
            .artifact(name)
            .ok_or_else(|| CoreError::MissingArtifact {
                path: format!("{}/{}", self.store, name),
            })?
            .clone();
        Ok(self.backup.open_artifact(&record))
    }

    /// Reads a small artifact whole, verified (documents, schema text).
    pub async fn read_small(&self, name: &str) -> Result<bytes::Bytes, CoreError> {
        self.open(name)?.read_to_end().await
    }

    /// The backup reader.
    pub fn backup(&self) -> &BackupReader {
        &self.backup
    }

    /// The progress sink.
    pub fn progress(&self) -> &ProgressSink {
        &self.progress
    }
}
