//! The pipeline: runs a plan's exporters into a new backup, or a backup's
//! importers into a target.
//!
//! Backup runs the exporters of every included store concurrently (bounded),
//! forwards their progress, and commits the manifest only when all of them
//! succeeded: a failure in any store leaves no manifest and names the store.
//! Restore runs importers phase by phase: databases first, then
//! configuration (so its revisions land on top of the restored tables), then
//! volumes, each phase's stores in parallel.
//!
//! Listing and verifying backups are [`BackupRepository::list`] and
//! [`BackupRepository::verify`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use sourcegraph_backup_core::pipeline::BackupPipeline;
//! use sourcegraph_backup_core::{plan, BackupOption, BackupRepository, Deployment, Exporter, PlanRequest};
//!
//! # async fn run(pgsql: Arc<dyn Exporter>, config: Arc<dyn Exporter>) -> Result<(), sourcegraph_backup_core::CoreError> {
//! let repo = BackupRepository::open("s3://backups/sourcegraph")?;
//! let plan = plan(&PlanRequest::new(BackupOption::AllPostgres, Deployment::Kubernetes));
//! let outcome = BackupPipeline::new(repo, plan)
//!     .exporter(pgsql)
//!     .exporter(config)
//!     .run()
//!     .await?;
//! println!("backup {} committed", outcome.manifest.backup_id);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::CoreError;
use crate::manifest::{BackupManifest, SourceInfo};
use crate::plan::{Decision, Plan};
use crate::progress::{ProgressEvent, ProgressSink};
use crate::repository::{BackupReader, BackupRepository, BackupWriter, StoreSection};
use crate::store::{ExportContext, Exporter, ImportContext, ImportReport, Importer, StoreKind};

/// What one store did.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOutcome {
    /// The store id.
    pub store: String,
    /// Its kind.
    pub kind: StoreKind,
    /// Bytes as stored in the backup (compressed).
    pub stored_bytes: u64,
    /// Bytes before compression.
    pub raw_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Warnings the store reported.
    pub warnings: Vec<String>,
}

/// A committed backup and what each store did.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The committed manifest.
    pub manifest: BackupManifest,
    /// One entry per exported store.
    pub stores: Vec<StoreOutcome>,
    /// Wall time of the whole backup.
    pub elapsed: Duration,
}

/// Runs a plan's exporters into a new backup.
#[derive(Debug)]
pub struct BackupPipeline {
    repo: BackupRepository,
    plan: Plan,
    exporters: Vec<Arc<dyn Exporter>>,
    concurrency: usize,
    progress: ProgressSink,
}

impl BackupPipeline {
    /// A pipeline writing `plan` into `repo`.
    pub fn new(repo: BackupRepository, plan: Plan) -> Self {
        BackupPipeline {
            repo,
            plan,
            exporters: Vec::new(),
            concurrency: 4,
            progress: ProgressSink::disabled(),
        }
    }

    /// Adds the exporter of one store.
    pub fn exporter(mut self, exporter: Arc<dyn Exporter>) -> Self {
        self.exporters.push(exporter);
        self
    }

    /// How many stores export at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Where progress events go.
    pub fn progress(mut self, sink: ProgressSink) -> Self {
        self.progress = sink;
        self
    }

    /// Runs every exporter the plan includes and commits the manifest.
    /// Fails, leaving no manifest, when any store fails, when an included
    /// store has no exporter, or when an exporter's store is not in the plan;
    /// a backup that fails removes what it wrote.
    pub async fn run(self) -> Result<BackupOutcome, CoreError> {
        self.run_until(std::future::pending()).await
    }

    /// [`run`](Self::run), stopped when `interrupt` completes first (a signal, a deadline):
    /// uploads in flight are aborted, everything the backup wrote is removed, and the result
    /// is [`CoreError::Interrupted`].
    pub async fn run_until(
        self,
        interrupt: impl std::future::Future<Output = ()>,
    ) -> Result<BackupOutcome, CoreError> {
        let started = Instant::now();
        let BackupPipeline {
            repo,
            plan,
            exporters,
            concurrency,
            progress,
        } = self;
        let mut selected = Vec::new();
        for e in exporters {
            match plan.stores.iter().find(|s| s.id == e.id() && s.kind == e.kind()) {
                Some(s) if s.decision == Decision::Included => selected.push(e),
                Some(_) => {} // the plan skips it, with its reason
                None => {
                    return Err(CoreError::UnknownStore {
                        store: e.id().into(),
                        backup: "the plan".into(),
                    })
                }
            }
        }
        for s in plan.included_stores() {
            if !selected.iter().any(|e| e.id() == s.id && e.kind() == s.kind) {
                return Err(CoreError::MissingExporter { store: s.id.clone() });
            }
        }
        let writer = repo.start_backup(plan.request.option);
        let work = export_and_commit(&writer, plan, selected, concurrency, progress);
        let result = {
            tokio::pin!(work);
            tokio::select! {
                r = &mut work => Some(r),
                () = interrupt => None,
            }
        };
        match result {
            Some(Ok((manifest, stores))) => Ok(BackupOutcome {
                manifest,
                stores,
                elapsed: started.elapsed(),
            }),
            Some(Err(e)) => {
                // The failure is what the caller needs; a failed clean-up leaves an
                // incomplete backup that `clean` removes once its lease lapses.
                let _ = writer.abort().await;
                Err(e)
            }
            None => {
                let removed = writer.abort().await.is_ok();
                Err(CoreError::Interrupted {
                    backup: writer.id().to_string(),
                    removed,
                })
            }
        }
    }
}

/// Exports every selected store into `writer` and commits the manifest.
async fn export_and_commit(
    writer: &BackupWriter,
    plan: Plan,
    selected: Vec<Arc<dyn Exporter>>,
    concurrency: usize,
    progress: ProgressSink,
) -> Result<(BackupManifest, Vec<StoreOutcome>), CoreError> {
    {
        let results: Vec<(StoreSection, StoreOutcome, SourceInfo)> = stream::iter(selected)
            .map(|exporter| {
                let ctx = ExportContext::new(exporter.id(), writer.clone(), progress.clone());
                let progress = progress.clone();
                async move {
                    let store = exporter.id().to_string();
                    let (report, elapsed) =
                        run_store(&progress, &store, "export", exporter.export(ctx)).await?;
                    let section = StoreSection {
                        id: store.clone(),
                        kind: exporter.kind(),
                        catalog: exporter.catalog(),
                        details: report.details,
                        warnings: report.warnings.clone(),
                    };
                    let outcome = StoreOutcome {
                        store,
                        kind: exporter.kind(),
                        stored_bytes: 0,
                        raw_bytes: 0,
                        elapsed,
                        warnings: report.warnings,
                    };
                    Ok::<_, CoreError>((section, outcome, report.source))
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;

        let mut source = SourceInfo::default();
        let mut sections = Vec::new();
        let mut outcomes = Vec::new();
        let mut warnings = Vec::new();
        for (section, mut outcome, store_source) in results {
            if source.sourcegraph_version.is_none() {
                source.sourcegraph_version = store_source.sourcegraph_version;
            }
            source.schema_versions.extend(store_source.schema_versions);
            let artifacts = writer.artifacts_of(&section.id);
            outcome.stored_bytes = artifacts.iter().map(|a| a.size).sum();
            outcome.raw_bytes = artifacts.iter().map(|a| a.uncompressed_size).sum();
            warnings.extend(section.warnings.iter().map(|w| format!("{}: {w}", section.id)));
            sections.push(section);
            outcomes.push(outcome);
        }
        sections.sort_by(|a, b| a.id.cmp(&b.id));
        outcomes.sort_by(|a, b| a.store.cmp(&b.store));
        let manifest = writer.commit(sections, Some(plan), source, warnings).await?;
        Ok((manifest, outcomes))
    }
}

/// What a restore did, per store.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    /// The backup restored from.
    pub backup: String,
    /// Per store: its import report and wall time, in restore order.
    pub stores: Vec<(String, ImportReport, Duration)>,
    /// Stores in the backup that no importer was given for.
    pub not_restored: Vec<String>,
    /// Wall time of the whole restore.
    pub elapsed: Duration,
}

/// An importer with the context it imports from.
type ImportJob = (Arc<dyn Importer>, ImportContext);

/// One store's import: its id, report and wall time, or its id and error.
type ImportResult = Result<(String, ImportReport, Duration), (String, CoreError)>;

/// Runs a committed backup's importers into targets, phase by phase.
#[derive(Debug)]
pub struct RestorePipeline {
    backup: BackupReader,
    importers: Vec<Arc<dyn Importer>>,
    concurrency: usize,
    progress: ProgressSink,
}

impl RestorePipeline {
    /// A restore of `backup`.
    pub fn new(backup: BackupReader) -> Self {
        RestorePipeline {
            backup,
            importers: Vec::new(),
            concurrency: 4,
            progress: ProgressSink::disabled(),
        }
    }

    /// Adds the importer of one store.
    pub fn importer(mut self, importer: Arc<dyn Importer>) -> Self {
        self.importers.push(importer);
        self
    }

    /// How many stores of one phase import at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Where progress events go.
    pub fn progress(mut self, sink: ProgressSink) -> Self {
        self.progress = sink;
        self
    }

    /// Runs the importers: databases, then configuration, then volumes.
    /// Every importer's store must be in the backup; that is checked before
    /// anything is imported. A failing store fails the restore, naming it; see
    /// [`RestorePipeline::run_reporting`] for what was restored before it.
    pub async fn run(self) -> Result<RestoreOutcome, CoreError> {
        self.run_reporting().await.map_err(PartialRestore::into_error)
    }

    /// Like [`RestorePipeline::run`], but a failure also reports what was
    /// done: the stores of earlier phases that were restored, the stores that
    /// failed, and those of later phases that were not started. Stores of the
    /// failing phase that were already running are let finish (a database cut
    /// off mid-restore is of no use to anyone).
    pub async fn run_reporting(self) -> Result<RestoreOutcome, PartialRestore> {
        let started = Instant::now();
        let RestorePipeline {
            backup,
            importers,
            concurrency,
            progress,
        } = self;
        let all: Vec<String> = importers.iter().map(|i| i.id().to_string()).collect();
        let setup_failed = |store: &str, error: CoreError| PartialRestore {
            outcome: RestoreOutcome {
                backup: backup.id().into(),
                stores: Vec::new(),
                not_restored: Vec::new(),
                elapsed: started.elapsed(),
            },
            failed: vec![(store.to_string(), error)],
            not_started: all.iter().filter(|s| s.as_str() != store).cloned().collect(),
        };
        let mut phases: BTreeMap<u8, Vec<ImportJob>> = BTreeMap::new();
        for imp in importers {
            let ctx = match ImportContext::new(imp.id(), backup.clone(), progress.clone()) {
                Ok(ctx) => ctx,
                Err(e) => return Err(setup_failed(imp.id(), e)),
            };
            if ctx.store_manifest().kind != imp.kind() {
                let e = CoreError::UnknownStore {
                    store: format!("{} ({:?})", imp.id(), imp.kind()),
                    backup: backup.id().into(),
                };
                return Err(setup_failed(imp.id(), e));
            }
            phases
                .entry(imp.kind().restore_phase())
                .or_default()
                .push((imp, ctx));
        }
        let not_restored = backup
            .manifest()
            .stores
            .iter()
            .filter(|s| !all.contains(&s.id))
            .map(|s| s.id.clone())
            .collect();
        let mut stores = Vec::new();
        let mut failed = Vec::new();
        let mut not_started = Vec::new();
        for (_, group) in phases {
            if !failed.is_empty() {
                not_started.extend(group.iter().map(|(i, _)| i.id().to_string()));
                continue;
            }
            let results: Vec<ImportResult> = stream::iter(group)
                .map(|(imp, ctx)| {
                    let progress = progress.clone();
                    async move {
                        let store = imp.id().to_string();
                        match run_store(&progress, &store, "import", imp.import(ctx)).await {
                            Ok((report, elapsed)) => Ok((store, report, elapsed)),
                            Err(e) => Err((store, e)),
                        }
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let mut done = Vec::new();
            for r in results {
                match r {
                    Ok(d) => done.push(d),
                    Err(f) => failed.push(f),
                }
            }
            done.sort_by(|a, b| a.0.cmp(&b.0));
            stores.extend(done);
        }
        failed.sort_by(|a, b| a.0.cmp(&b.0));
        let outcome = RestoreOutcome {
            backup: backup.id().into(),
            stores,
            not_restored,
            elapsed: started.elapsed(),
        };
        if failed.is_empty() {
            Ok(outcome)
        } else {
            Err(PartialRestore {
                outcome,
                failed,
                not_started,
            })
        }
    }
}

/// A restore that failed part-way: what it did before and beside the failure.
#[derive(Debug)]
pub struct PartialRestore {
    /// The stores that were restored (earlier phases, and stores of the failing
    /// phase that succeeded), and the stores no importer was given for.
    pub outcome: RestoreOutcome,
    /// The stores whose import failed, with the error naming each; never empty.
    pub failed: Vec<(String, CoreError)>,
    /// Stores of later phases that were not started because of the failure.
    pub not_started: Vec<String>,
}

impl PartialRestore {
    /// The error of the first failed store (by id).
    pub fn into_error(self) -> CoreError {
        let backup = self.outcome.backup;
        self.failed
            .into_iter()
            .next()
            .map_or(CoreError::RestoreFailed { backup }, |(_, e)| e)
    }
}

impl std::fmt::Display for PartialRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.failed.first() {
            Some((_, e)) => write!(f, "{e}"),
            None => f.write_str("the restore failed"),
        }
    }
}

impl std::error::Error for PartialRestore {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failed
            .first()
            .and_then(|(_, e)| std::error::Error::source(e))
    }
}

/// Runs one store's export or import between its started and finished
/// progress events, naming the store in the error.
async fn run_store<T>(
    progress: &ProgressSink,
    store: &str,
    phase: &'static str,
    work: impl std::future::Future<Output = Result<T, crate::error::StoreError>>,
) -> Result<(T, Duration), CoreError> {
    let started = Instant::now();
    progress.send(ProgressEvent::StoreStarted {
        store: store.into(),
        total_bytes: None,
    });
    let result = work.await;
    progress.send(ProgressEvent::StoreFinished {
        store: store.into(),
        error: result.as_ref().err().map(|e| e.to_string()),
    });
    let value = result.map_err(|source| CoreError::Store {
        store: store.into(),
        phase,
        source,
    })?;
    Ok((value, started.elapsed()))
}
