//! The conformance suite every store runs: given an [`Exporter`] and a way to make fresh
//! [`Importer`] targets, it checks the contract of the core traits, as object_store's
//! `integration` module does for its backends:
//!
//! 1. a round trip through a local repository, with progress events naming the store, and a
//!    caller-supplied check that the target equals the source (the oracle);
//! 2. `verify` of the committed backup;
//! 3. corrupt artifacts (one byte flipped in each): an import into a fresh target fails with
//!    [`StoreErrorKind::CorruptBackup`], naming one of them;
//! 4. a non-empty target: importing again into the restored target fails with
//!    [`StoreErrorKind::TargetNotEmpty`], and the target still passes the check.
//!
//! The building blocks ([`backup_store`], [`restore_store`]) are the export → commit → import
//! glue the store crates' own tests share.
//!
//! ```no_run
//! # async fn demo(
//! #     source: std::sync::Arc<dyn sourcegraph_backup_core::Exporter>,
//! #     fresh: Vec<std::sync::Arc<dyn sourcegraph_backup_core::Importer>>,
//! # ) {
//! use sourcegraph_backup_testkit::conformance::{run, Subject};
//! let mut targets = fresh.into_iter();
//! let report = run(Subject {
//!     source,
//!     fresh_target: Box::new(move || {
//!         let next = targets.next().expect("enough targets");
//!         Box::pin(async move { next })
//!     }),
//!     check: Box::new(|_target| Box::pin(async { Ok(()) })),
//! })
//! .await;
//! report.assert_conforms();
//! # }
//! ```

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use sourcegraph_backup_core::{
    BackupManifest, BackupOption, BackupReader, BackupRepository, ExportContext, ExportReport, Exporter,
    ImportContext, ImportReport, Importer, ProgressEvent, ProgressSink, StoreError, StoreErrorKind,
    StoreSection,
};

/// Exports `store` into a new backup of `repo` and commits it; returns the export report, the
/// committed manifest and the progress events the store sent.
pub async fn backup_store(
    repo: &BackupRepository,
    store: &dyn Exporter,
) -> Result<(ExportReport, BackupManifest, Vec<ProgressEvent>), StoreError> {
    let (sink, mut events) = ProgressSink::channel();
    let writer = repo.start_backup(BackupOption::AllData);
    let ctx = ExportContext::new(store.id(), writer.clone(), sink);
    let report = store.export(ctx).await?;
    let section = StoreSection {
        id: store.id().into(),
        kind: store.kind(),
        catalog: store.catalog(),
        details: report.details.clone(),
        warnings: report.warnings.clone(),
    };
    let manifest = writer
        .commit(vec![section], None, report.source.clone(), vec![])
        .await?;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    Ok((report, manifest, seen))
}

/// Imports store `store.id()` of `backup` into `store`; returns the report and the progress
/// events the store sent.
pub async fn restore_store(
    backup: BackupReader,
    store: &dyn Importer,
) -> Result<(ImportReport, Vec<ProgressEvent>), StoreError> {
    let (sink, mut events) = ProgressSink::channel();
    let ctx = ImportContext::new(store.id(), backup, sink)?;
    let report = store.import(ctx).await?;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    Ok((report, seen))
}

/// Makes a fresh, empty target each time it is called.
pub type FreshTarget = Box<dyn FnMut() -> BoxFuture<'static, Arc<dyn Importer>> + Send>;

/// Checks that a target holds what the source held (the oracle); `Err` says what differs.
pub type Check = Box<dyn Fn(Arc<dyn Importer>) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What the suite is run on.
pub struct Subject {
    /// The store backed up.
    pub source: Arc<dyn Exporter>,
    /// Fresh targets (called three times: round trip, corrupt artifact, spare).
    pub fresh_target: FreshTarget,
    /// The oracle.
    pub check: Check,
}

/// What the suite found.
#[derive(Debug, Default)]
pub struct ConformanceReport {
    /// The store id.
    pub store: String,
    /// Each broken promise, in words; empty when the store conforms.
    pub failures: Vec<String>,
    /// The corrupt artifact the import named, for the caller's own checks.
    pub corrupted_artifact: Option<String>,
}

impl ConformanceReport {
    /// Panics with every failure unless the store conforms.
    pub fn assert_conforms(&self) {
        assert!(
            self.failures.is_empty(),
            "store {} does not conform:\n{}",
            self.store,
            self.failures.join("\n")
        );
    }
}

fn mentions_store(events: &[ProgressEvent], store: &str) -> bool {
    events.iter().any(|e| match e {
        ProgressEvent::Bytes { store: s, .. }
        | ProgressEvent::Rows { store: s, .. }
        | ProgressEvent::ArtifactCommitted { store: s, .. }
        | ProgressEvent::Warning { store: s, .. }
        | ProgressEvent::StoreStarted { store: s, .. }
        | ProgressEvent::StoreFinished { store: s, .. } => s == store,
    })
}

/// Flips one byte in the middle of every artifact of `backup` in the local repository at
/// `root` (a store need not read every artifact, but reads some); returns their paths.
fn corrupt_all(root: &Path, manifest: &BackupManifest) -> Vec<String> {
    let mut corrupted = Vec::new();
    for record in manifest
        .stores
        .iter()
        .flat_map(|s| &s.artifacts)
        .filter(|a| a.size > 0)
    {
        let file = record
            .path
            .split('/')
            .fold(root.join(&manifest.backup_id), |p, part| p.join(part));
        let Ok(mut bytes) = std::fs::read(&file) else {
            continue;
        };
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        if std::fs::write(&file, bytes).is_ok() {
            corrupted.push(record.path.clone());
        }
    }
    corrupted
}

/// Runs the suite on `subject` with its own temporary local repository.
pub async fn run(mut subject: Subject) -> ConformanceReport {
    let store = subject.source.id().to_string();
    let mut report = ConformanceReport {
        store: store.clone(),
        ..ConformanceReport::default()
    };
    let fail = |report: &mut ConformanceReport, what: String| report.failures.push(what);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            fail(&mut report, format!("cannot make a temporary repository: {e}"));
            return report;
        }
    };
    let repo = match BackupRepository::local(dir.path()) {
        Ok(r) => r,
        Err(e) => {
            fail(&mut report, format!("cannot open a local repository: {e}"));
            return report;
        }
    };

    // 1. Round trip, with progress.
    let (_, manifest, events) = match backup_store(&repo, subject.source.as_ref()).await {
        Ok(done) => done,
        Err(e) => {
            fail(&mut report, format!("export failed: {e}"));
            return report;
        }
    };
    if !mentions_store(&events, &store) {
        fail(
            &mut report,
            format!("export sent no progress event naming store {store}"),
        );
    }
    if manifest.store(&store).is_none_or(|s| s.artifacts.is_empty()) {
        fail(
            &mut report,
            "the committed manifest lists no artifact for the store".into(),
        );
    }
    // 2. Verify.
    match repo.verify(&manifest.backup_id).await {
        Ok(v) if v.is_ok() => {}
        Ok(v) => fail(&mut report, format!("verify found problems: {:?}", v.problems)),
        Err(e) => fail(&mut report, format!("verify failed: {e}")),
    }
    let target = (subject.fresh_target)().await;
    let reader = match repo.open_backup(&manifest.backup_id).await {
        Ok(r) => r,
        Err(e) => {
            fail(&mut report, format!("cannot open the committed backup: {e}"));
            return report;
        }
    };
    match restore_store(reader.clone(), target.as_ref()).await {
        Ok((_, events)) => {
            if !mentions_store(&events, target.id()) {
                fail(
                    &mut report,
                    format!("import sent no progress event naming store {}", target.id()),
                );
            }
            if let Err(diff) = (subject.check)(target.clone()).await {
                fail(
                    &mut report,
                    format!("the restored target differs from the source: {diff}"),
                );
            }
        }
        Err(e) => fail(&mut report, format!("import into a fresh target failed: {e}")),
    }

    // 4. A non-empty target is refused and left as it was.
    match restore_store(reader, target.as_ref()).await {
        Ok(_) => fail(
            &mut report,
            "a second import into the restored target succeeded".into(),
        ),
        Err(e) if e.kind() != StoreErrorKind::TargetNotEmpty => fail(
            &mut report,
            format!(
                "importing into a non-empty target failed as {:?}, not TargetNotEmpty: {e}",
                e.kind()
            ),
        ),
        Err(_) => {
            if let Err(diff) = (subject.check)(target.clone()).await {
                fail(
                    &mut report,
                    format!("a refused import changed the target: {diff}"),
                );
            }
        }
    }

    // 3. Corrupt artifacts are refused by kind and name.
    let corrupted = corrupt_all(dir.path(), &manifest);
    if corrupted.is_empty() {
        fail(&mut report, "could not corrupt an artifact of the backup".into());
        return report;
    }
    let fresh = (subject.fresh_target)().await;
    let reader = match repo.open_backup(&manifest.backup_id).await {
        Ok(r) => r,
        Err(e) => {
            fail(&mut report, format!("cannot reopen the backup: {e}"));
            return report;
        }
    };
    match restore_store(reader, fresh.as_ref()).await {
        Ok(_) => fail(
            &mut report,
            format!("an import succeeded although every artifact was corrupt: {corrupted:?}"),
        ),
        Err(e) => {
            let text = error_chain(&e);
            if e.kind() != StoreErrorKind::CorruptBackup {
                fail(
                    &mut report,
                    format!(
                        "a corrupt artifact failed as {:?}, not CorruptBackup: {text}",
                        e.kind()
                    ),
                );
            }
            match corrupted.iter().find(|p| text.contains(p.as_str())) {
                Some(p) => report.corrupted_artifact = Some(p.clone()),
                None => fail(
                    &mut report,
                    format!("the error names no corrupt artifact: {text}"),
                ),
            }
        }
    }
    report
}

/// The error and its causes, in one line.
fn error_chain(e: &StoreError) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
