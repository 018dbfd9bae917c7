//! [`VolumeStore`]: one named volume at a local directory, archived as one or
//! more tar parts and restored safely.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use sourcegraph_backup_core::catalog::{self, Deployment, DeploymentVolume};
use sourcegraph_backup_core::model::CatalogId;
use sourcegraph_backup_core::{
    ArtifactOptions, DataStore, ExportContext, ExportReport, Exporter, ImportContext, ImportReport, Importer,
    StoreError, StoreKind,
};

use crate::error::VolumeError;
use crate::export::{write_part, PartJob, ReadHook};
use crate::extract::{apply_dir_meta, ExtractStats, Extractor};
use crate::report::{PartStats, VolumeDetails, VolumeImportDetails, DETAILS_FORMAT};
use crate::split::plan_parts;

/// Default target size of one part before compression: 1 GiB.
pub const DEFAULT_PART_SIZE: u64 = 1 << 30;
/// Default number of parts archived or restored at once.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// Media type of the parts (before compression).
pub const TAR_CONTENT_TYPE: &str = "application/x-tar";

/// How a volume is archived and restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeOptions {
    /// Target part size in tar bytes; a single larger subtree gets its own part.
    pub part_size: u64,
    /// Parts archived or restored at once (at least 1).
    pub concurrency: usize,
    /// Fail the export when a file changes or vanishes while archived.
    pub strict: bool,
    /// Restore into a non-empty directory (existing files are replaced).
    pub overwrite: bool,
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            strict: false,
            overwrite: false,
        }
    }
}

/// One persistent volume (id = volume name, e.g. `gitserver-0`) at a local
/// directory: the source when exporting, the target when importing.
#[derive(Clone)]
pub struct VolumeStore {
    id: String,
    path: PathBuf,
    volume: Option<&'static DeploymentVolume>,
    options: VolumeOptions,
    live_note: Option<String>,
    hook: Option<ReadHook>,
}

impl std::fmt::Debug for VolumeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeStore")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("volume", &self.volume.map(|v| v.name))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl VolumeStore {
    /// Volume `id` at directory `path`, with default options.
    pub fn new(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        VolumeStore {
            id: id.into(),
            path: path.into(),
            volume: None,
            options: VolumeOptions::default(),
            live_note: None,
            hook: None,
        }
    }

    /// Looks the volume up in `deployment`'s catalog (content, recreatable
    /// flag, catalog rows); shards like `gitserver-2` resolve to their kind.
    pub fn with_deployment(mut self, deployment: Deployment) -> Self {
        self.volume = catalog::volume_for_name(deployment, &self.id);
        self
    }

    /// Replaces all options.
    pub fn with_options(mut self, options: VolumeOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the target part size (tar bytes).
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.options.part_size = bytes.max(1);
        self
    }

    /// Sets how many parts run at once.
    pub fn concurrency(mut self, parts: usize) -> Self {
        self.options.concurrency = parts.max(1);
        self
    }

    /// Makes files that change or vanish while archived an error.
    pub fn strict(mut self, strict: bool) -> Self {
        self.options.strict = strict;
        self
    }

    /// Allows restoring into a non-empty directory.
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.options.overwrite = overwrite;
        self
    }

    /// A free-text note recorded in the manifest details (e.g. "copied while
    /// Redis was running; the AOF tail may be cut, Redis repairs it on load").
    pub fn with_live_note(mut self, note: impl Into<String>) -> Self {
        self.live_note = Some(note.into());
        self
    }

    /// Calls `hook` for every regular file as it is archived (tests, instrumentation).
    pub fn with_read_hook(mut self, hook: ReadHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options.
    pub fn options(&self) -> &VolumeOptions {
        &self.options
    }

    /// The standard deployment volume this is (or is a shard of), if known.
    pub fn volume(&self) -> Option<&'static DeploymentVolume> {
        self.volume
    }

    fn io(&self, path: impl Into<PathBuf>, source: std::io::Error) -> VolumeError {
        VolumeError::Io {
            volume: self.id.clone(),
            path: path.into(),
            source,
        }
    }

    fn task(&self, e: tokio::task::JoinError) -> VolumeError {
        VolumeError::Task {
            volume: self.id.clone(),
            reason: e.to_string(),
        }
    }

    fn check_source(&self) -> Result<(), VolumeError> {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(VolumeError::NotADirectory {
                volume: self.id.clone(),
                path: self.path.clone(),
            }),
            Err(e) => Err(self.io(&self.path, e)),
        }
    }

    /// Archives the volume; see [`Exporter::export`].
    async fn export_volume(&self, ctx: &ExportContext) -> Result<ExportReport, VolumeError> {
        let part_size = self.options.part_size;
        let store = self.clone();
        let parts = tokio::task::spawn_blocking(move || {
            store.check_source()?;
            plan_parts(&store.path, part_size).map_err(|e| store.io(&store.path, e))
        })
        .await
        .map_err(|e| self.task(e))??;
        let results: Vec<Result<PartStats, VolumeError>> = stream::iter(parts)
            .map(|spec| self.export_part(ctx, spec))
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut details = VolumeDetails {
            format: DETAILS_FORMAT,
            volume: self.id.clone(),
            path: self.path.display().to_string(),
            deployment_volume: self.volume.map(|v| v.name.to_string()),
            part_size,
            live_note: self.live_note.clone(),
            ..VolumeDetails::default()
        };
        let mut stats = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        stats.sort_by(|a, b| a.artifact.cmp(&b.artifact));
        for part in stats {
            details.add_part(part);
        }
        let unstable = details.changed.count + details.vanished.count;
        if self.options.strict && unstable > 0 {
            let mut first = details.changed.first.clone();
            first.extend(details.vanished.first.iter().cloned());
            return Err(VolumeError::Unstable {
                volume: self.id.clone(),
                count: unstable,
                first,
            });
        }
        let warnings = details.warnings();
        for w in &warnings {
            ctx.progress().warning(&self.id, w.clone());
        }
        let details = self.to_json("manifest details", &details)?;
        Ok(ExportReport {
            details,
            warnings,
            source: Default::default(),
        })
    }

    async fn export_part(
        &self,
        ctx: &ExportContext,
        spec: crate::split::PartSpec,
    ) -> Result<PartStats, VolumeError> {
        let name = spec.artifact_name();
        let core = |source| VolumeError::Core {
            volume: self.id.clone(),
            source: Box::new(source),
        };
        let writer = ctx
            .artifact(&name, ArtifactOptions::zstd(TAR_CONTENT_TYPE))
            .await
            .map_err(core)?
            .into_blocking();
        let job = PartJob {
            root: self.path.clone(),
            spec,
            store: self.id.clone(),
            progress: ctx.progress().clone(),
            hook: self.hook.clone(),
        };
        let volume = self.id.clone();
        let (record, mut stats) = tokio::task::spawn_blocking(move || {
            let (writer, stats) = write_part(job, writer).map_err(|(path, source)| VolumeError::Io {
                volume: volume.clone(),
                path,
                source,
            })?;
            let record = writer.finish().map_err(|source| VolumeError::Core {
                volume,
                source: Box::new(source),
            })?;
            Ok::<_, VolumeError>((record, stats))
        })
        .await
        .map_err(|e| self.task(e))??;
        stats.stored_bytes = record.size;
        Ok(stats)
    }

    /// Serialises a report's details.
    fn to_json(
        &self,
        what: &'static str,
        value: &impl serde::Serialize,
    ) -> Result<serde_json::Value, VolumeError> {
        serde_json::to_value(value).map_err(|e| VolumeError::Serialize {
            volume: self.id.clone(),
            what,
            reason: e.to_string(),
        })
    }

    /// Restores the volume; see [`Importer::import`].
    async fn import_volume(&self, ctx: &ImportContext) -> Result<ImportReport, VolumeError> {
        // Before the target is touched: details of a newer format are refused.
        VolumeDetails::from_manifest(ctx.store(), &ctx.store_manifest().details)?;
        let store = self.clone();
        let root = tokio::task::spawn_blocking(move || store.prepare_target())
            .await
            .map_err(|e| self.task(e))??;
        let mut names: Vec<String> = ctx
            .store_manifest()
            .artifacts
            .iter()
            .map(|a| a.name().to_string())
            .filter(|n| n.starts_with("part-") && n.contains(".tar"))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(VolumeError::NoParts {
                volume: self.id.clone(),
            });
        }
        let total = names.len();
        let results: Vec<Result<(ExtractStats, u64), VolumeError>> = stream::iter(names)
            .map(|name| self.import_part(ctx, root.clone(), name))
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut failures = Vec::new();
        let mut all = ExtractStats::default();
        let mut stored = 0u64;
        for r in results {
            match r {
                Ok((s, size)) => {
                    stored += size;
                    all.files += s.files;
                    all.dirs += s.dirs;
                    all.symlinks += s.symlinks;
                    all.hardlinks += s.hardlinks;
                    all.bytes += s.bytes;
                    all.dir_meta.extend(s.dir_meta);
                }
                Err(e) => failures.push(e),
            }
        }
        // Directory modes and mtimes go last, also when a part failed, so
        // that what was restored is as faithful as it can be.
        let dirs = std::mem::take(&mut all.dir_meta);
        let dir_result = tokio::task::spawn_blocking(move || apply_dir_meta(dirs))
            .await
            .map_err(|e| self.task(e))?;
        if !failures.is_empty() {
            if failures.len() == 1 && total == 1 {
                return Err(failures.remove(0));
            }
            return Err(VolumeError::Parts {
                volume: self.id.clone(),
                total,
                failures,
            });
        }
        dir_result.map_err(|(p, e)| self.io(p, e))?;
        let details = VolumeImportDetails {
            volume: self.id.clone(),
            path: self.path.display().to_string(),
            parts: total,
            files: all.files,
            dirs: all.dirs,
            symlinks: all.symlinks,
            hardlinks: all.hardlinks,
            bytes: all.bytes,
        };
        Ok(ImportReport {
            details: self.to_json("import report", &details)?,
            warnings: Vec::new(),
            bytes: stored,
        })
    }

    /// Creates the target if missing; refuses a non-empty one unless overwriting.
    fn prepare_target(&self) -> Result<PathBuf, VolumeError> {
        std::fs::create_dir_all(&self.path).map_err(|e| self.io(&self.path, e))?;
        self.check_source()?;
        let mut entries = std::fs::read_dir(&self.path).map_err(|e| self.io(&self.path, e))?;
        if entries.next().is_some() && !self.options.overwrite {
            return Err(VolumeError::TargetNotEmpty {
                volume: self.id.clone(),
                path: self.path.clone(),
            });
        }
        std::fs::canonicalize(&self.path).map_err(|e| self.io(&self.path, e))
    }

    async fn import_part(
        &self,
        ctx: &ImportContext,
        root: PathBuf,
        name: String,
    ) -> Result<(ExtractStats, u64), VolumeError> {
        let artifact = format!("{}/{}", self.id, name);
        let reader = ctx.open(&name).map_err(|source| VolumeError::Artifact {
            artifact: artifact.clone(),
            source: Box::new(source),
        })?;
        let size = reader.record().size;
        let read = reader.into_blocking_read();
        let extractor = Extractor::new(root, artifact, self.id.clone(), ctx.progress().clone());
        let stats = tokio::task::spawn_blocking(move || extractor.run(read))
            .await
            .map_err(|e| self.task(e))??;
        Ok((stats, size))
    }
}

#[async_trait]
impl DataStore for VolumeStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> StoreKind {
        StoreKind::Volume
    }

    fn catalog(&self) -> Vec<CatalogId> {
        match self.volume {
            Some(v) if !v.catalog.is_empty() => v.catalog.iter().map(|&s| CatalogId::from(s)).collect(),
            Some(v) => vec![CatalogId::from(v.name)],
            None => Vec::new(),
        }
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn check_reachable(&self) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.check_source())
            .await
            .map_err(|e| self.task(e))?
            .map_err(Into::into)
    }
}

#[async_trait]
impl Exporter for VolumeStore {
    async fn export(&self, ctx: ExportContext) -> Result<ExportReport, StoreError> {
        Ok(self.export_volume(&ctx).await?)
    }
}

#[async_trait]
impl Importer for VolumeStore {
    async fn import(&self, ctx: ImportContext) -> Result<ImportReport, StoreError> {
        Ok(self.import_volume(&ctx).await?)
    }
}
