//! What the three example programs share: arguments, store wiring, progress,
//! the summary, and running a command to an exit code.
//!
//! Included by each program with `#[path = "cli/mod.rs"] mod cli;` (a
//! directory under `examples/` with a `mod.rs` is not itself an example).

#![allow(dead_code)] // each program uses a different part of it

pub mod args;
pub mod instance;
pub mod listing;
pub mod out;
pub mod progress;
pub mod stores;
pub mod summary;

use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;

use futures::future::try_join_all;
use sourcegraph_backup::core::pipeline::{BackupPipeline, RestorePipeline};
use sourcegraph_backup::core::{BackupReader, BackupRepository, CoreError, Plan, StoreKind};

use progress::Progress;
use stores::StoreHandle;
use summary::Summary;

/// Any error of a command; printed as one line plus its causes.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A usage mistake found after parsing (e.g. a plan volume without a path):
/// reported like clap's own usage errors, with exit code 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A backup stopped by SIGINT or SIGTERM: reported in one line, exit code 130.
#[derive(Debug)]
pub struct Interrupted {
    /// The backup that was stopped.
    pub backup: String,
    /// Whether everything it wrote was removed.
    pub removed: bool,
    /// The repository, for the `clean` hint when something is left.
    pub location: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.removed {
            write!(f, "interrupted: backup {} removed", self.backup)
        } else {
            write!(
                f,
                "interrupted: backup {} could not be removed: run `clean --from {}`",
                self.backup, self.location
            )
        }
    }
}

impl std::error::Error for Interrupted {}

/// The exit code of a command stopped by SIGINT (128 + 2), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A command that failed after doing part of its work: its summary (what was
/// done, what failed, what was not started) is printed with the error.
#[derive(Debug)]
pub struct PartlyDone {
    /// What was done.
    pub summary: Box<Summary>,
    /// The error's first line: what failed and how to finish the work.
    pub message: String,
    /// The failure.
    pub source: Error,
}

impl std::fmt::Display for PartlyDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PartlyDone {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The usage of subcommand `name` of `C`, for usage errors found after parsing.
pub fn usage_of<C: clap::CommandFactory>(name: &str) -> clap::Command {
    let mut cmd = C::command();
    cmd.build();
    cmd.find_subcommand(name).cloned().unwrap_or(cmd)
}

/// Parses the command line. Help and version are printed as clap prints them; usage
/// errors are printed redacted (they can quote a value given on the command line), exit 2.
pub fn parse<C: clap::Parser>() -> C {
    match C::try_parse() {
        Ok(c) => c,
        Err(e) => exit_with(e),
    }
}

/// Prints a clap error (redacted, unless it is help or version output) and exits with its code.
fn exit_with(e: clap::Error) -> ! {
    if e.use_stderr() {
        eprint!("{}", out::redact(&e.render().to_string()));
        std::process::exit(e.exit_code())
    }
    e.exit()
}

/// Runs `command` on a multi-threaded runtime and turns its result into the
/// exit code: 0 success, 1 failure (one `error:` line plus `caused by:`
/// lines), 2 bad usage, 130 a backup interrupted by a signal (one line). A
/// panic is reported as an internal error, exit 1, without a backtrace.
pub fn run<F>(json: bool, usage: clap::Command, command: F) -> ExitCode
where
    F: Future<Output = Result<bool, Error>>,
{
    std::panic::set_hook(Box::new(|info| {
        out::err(format!("error: internal error: {info}"));
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&e, json),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(command)));
    // Background tasks (progress, cancelled stores) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(e)) => {
            if let Some(Usage(msg)) = e.downcast_ref::<Usage>() {
                let mut usage = usage;
                exit_with(usage.error(clap::error::ErrorKind::MissingRequiredArgument, msg))
            }
            if let Some(i) = e.downcast_ref::<Interrupted>() {
                return interrupted(i, json);
            }
            fail(e.as_ref(), json)
        }
        Err(_) => ExitCode::FAILURE, // the hook printed it
    }
}

/// Prints the one line of an interrupted backup; with `--json` also one object on stdout.
fn interrupted(i: &Interrupted, json: bool) -> ExitCode {
    out::err(i.to_string());
    if json {
        summary::print_json(&serde_json::json!({
            "command": "backup", "ok": false, "interrupted": true, "backup_id": i.backup,
            "removed": i.removed, "error": i.to_string(),
        }));
    }
    ExitCode::from(EXIT_INTERRUPTED)
}

/// Prints an error and its source chain, redacted; with `--json` also one object on stdout.
fn fail(e: &(dyn std::error::Error + 'static), json: bool) -> ExitCode {
    let top = e.to_string();
    let mut causes: Vec<String> = Vec::new();
    let mut seen = top.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Errors that already print their source in their own message would repeat it.
        if !seen.contains(&text) {
            seen.push_str(&text);
            causes.push(text);
        }
        source = s.source();
    }
    let partly = e.downcast_ref::<PartlyDone>();
    if let (Some(p), false) = (partly, json) {
        p.summary.print(false);
    }
    out::err(format!("error: {top}"));
    for c in &causes {
        out::err(format!("  caused by: {c}"));
    }
    if json {
        // One object on stdout: the summary of what was done, when there is one.
        let mut out = partly
            .and_then(|p| serde_json::to_value(&p.summary).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        if let Some(o) = out.as_object_mut() {
            o.insert("ok".into(), false.into());
            o.insert("error".into(), top.into());
            o.insert("causes".into(), causes.into());
        }
        summary::print_json(&out);
    }
    ExitCode::FAILURE
}

/// Opens a repository to read from; a local path must exist (opening would create it).
pub fn open_source(from: &str) -> Result<BackupRepository, Error> {
    if !from.contains("://") && !std::path::Path::new(from).is_dir() {
        return Err(format!("backup location {from} does not exist or is not a directory").into());
    }
    Ok(BackupRepository::open(from)?)
}

/// Opens backup `pick`, or the newest complete one.
pub async fn open_backup(from: &str, pick: Option<&str>) -> Result<BackupReader, Error> {
    let repo = open_source(from)?;
    Ok(match pick {
        Some(id) => repo.open_backup(id).await?,
        None => repo.open_latest().await?,
    })
}

/// Checks that every store can be reached before anything is written, so an
/// unreachable store fails fast, by name, leaving nothing behind.
async fn check_reachable(stores: &[StoreHandle]) -> Result<(), Error> {
    try_join_all(stores.iter().map(|s| async move {
        s.exporter
            .check_reachable()
            .await
            .map_err(|source| CoreError::Store {
                store: format!("{} ({})", s.id(), s.location()),
                phase: "check",
                source,
            })
    }))
    .await?;
    Ok(())
}

fn locations(stores: &[StoreHandle]) -> BTreeMap<String, String> {
    stores
        .iter()
        .map(|s| (s.id().to_string(), s.location()))
        .collect()
}

/// Runs a backup of `stores` following `plan` into `to`; stores the plan
/// skips are left out (and shown as skipped).
pub async fn backup(to: &str, plan: Plan, stores: Vec<StoreHandle>, jobs: usize) -> Result<Summary, Error> {
    let stores: Vec<StoreHandle> = stores.into_iter().filter(|s| !skipped(&plan, s.id())).collect();
    check_reachable(&stores).await?;
    let repo = BackupRepository::open(to)?;
    let (sink, progress) = Progress::start("backup");
    let mut pipeline = BackupPipeline::new(repo.clone(), plan)
        .concurrency(jobs)
        .progress(sink);
    for s in &stores {
        pipeline = pipeline.exporter(s.exporter.clone());
    }
    let interrupt = interrupt_signal()?;
    let result = pipeline.run_until(interrupt).await;
    progress.finish().await;
    let outcome = match result {
        Err(CoreError::Interrupted { backup, removed }) => {
            return Err(Interrupted {
                backup,
                removed,
                location: repo.location().to_string(),
            }
            .into())
        }
        other => other?,
    };
    let locs = locations(&stores);
    Ok(summary::of_backup(repo.location(), &outcome, &|id| {
        locs.get(id).cloned()
    }))
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed now, before the
/// backup starts, so a signal that arrives at any later moment is caught. A second signal
/// while the interrupted backup is being removed ends the process at once.
fn interrupt_signal() -> Result<impl Future<Output = ()>, Error> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tokio::spawn(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                out::err(
                    "interrupted again: exiting before the backup was removed; `clean --from DEST` removes it",
                );
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            });
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn skipped(plan: &Plan, id: &str) -> bool {
    plan.stores.iter().any(|s| s.id == id) && !plan.includes(id)
}

/// What a restore is given: a target per store to restore, and for the
/// backup's other stores why they get none.
#[derive(Default)]
pub struct Targets {
    /// The targets.
    pub stores: Vec<StoreHandle>,
    /// Store id → why no target was given for it (default: none was given).
    pub reasons: BTreeMap<String, String>,
    /// Store id → the command that restores only that store, named in the error
    /// when it fails after other stores were restored.
    pub rerun: BTreeMap<String, String>,
}

/// Restores `targets` from `backup`; stores of the backup without a target are
/// reported as not restored, with their reason. When a store fails after
/// others were restored, the error carries the summary of what was done
/// ([`PartlyDone`]) and names how to re-run the failed store alone.
pub async fn restore(
    backup: BackupReader,
    targets: Targets,
    jobs: usize,
    dry_run: bool,
) -> Result<Summary, Error> {
    let Targets {
        stores,
        reasons,
        rerun,
    } = targets;
    if stores.is_empty() {
        return Err(Usage(
            "nothing to restore into: give a target for at least one store of the backup".into(),
        )
        .into());
    }
    for s in &stores {
        if backup.manifest().store(s.id()).is_none() {
            let held: Vec<&str> = backup.manifest().stores.iter().map(|s| s.id.as_str()).collect();
            return Err(Usage(format!(
                "backup {} holds no store {} (it holds: {})",
                backup.id(),
                s.id(),
                held.join(", ")
            ))
            .into());
        }
    }
    // Volume and file targets are new directories: only databases must already be reachable.
    let existing: Vec<StoreHandle> = stores
        .iter()
        .filter(|s| s.kind() == StoreKind::Postgres)
        .cloned()
        .collect();
    check_reachable(&existing).await?;
    let location = backup.repository().location().to_string();
    let option = summary::kind_name(&backup.manifest().option);
    let kinds: BTreeMap<String, String> = backup
        .manifest()
        .stores
        .iter()
        .map(|s| (s.id.clone(), summary::kind_name(&s.kind)))
        .collect();
    let (sink, progress) = Progress::start("restore");
    let mut pipeline = RestorePipeline::new(backup).concurrency(jobs).progress(sink);
    for s in &stores {
        pipeline = pipeline.importer(s.importer.clone());
    }
    let result = pipeline.run_reporting().await;
    progress.finish().await;
    let locs = locations(&stores);
    let reason = |id: &str| {
        reasons
            .get(id)
            .cloned()
            .unwrap_or_else(|| "no target was given for it".into())
    };
    let location_of = |id: &str| locs.get(id).cloned();
    let with_kinds = |mut summary: Summary| {
        for row in &mut summary.stores {
            row.kind = kinds.get(&row.store).cloned().unwrap_or_default();
        }
        summary
    };
    match result {
        Ok(outcome) => Ok(with_kinds(summary::of_restore(
            &location,
            option,
            &outcome,
            dry_run,
            &reason,
            &location_of,
        ))),
        Err(partial) => {
            let summary = with_kinds(summary::of_partial_restore(
                &location,
                option,
                &partial,
                dry_run,
                &reason,
                &location_of,
            ));
            let restored: Vec<&str> = partial
                .outcome
                .stores
                .iter()
                .map(|(s, _, _)| s.as_str())
                .collect();
            let failed: Vec<&str> = partial.failed.iter().map(|(s, _)| s.as_str()).collect();
            let mut message = format!("restore of {} failed", failed.join(", "));
            if !restored.is_empty() {
                message.push_str(&format!(
                    " after {} {} restored",
                    restored.join(", "),
                    if restored.len() == 1 { "was" } else { "were" }
                ));
            }
            if !partial.not_started.is_empty() {
                message.push_str(&format!("; not started: {}", partial.not_started.join(", ")));
            }
            let reruns: Vec<&str> = failed
                .iter()
                .filter_map(|s| rerun.get(*s).map(String::as_str))
                .collect();
            if !restored.is_empty() && !reruns.is_empty() {
                message.push_str(&format!(
                    "; once the cause below is fixed, re-run only {}: {}",
                    failed.join(", "),
                    reruns.join("; ")
                ));
            }
            Err(Box::new(PartlyDone {
                summary: Box::new(summary),
                message,
                source: Box::new(partial.into_error()),
            }))
        }
    }
}

/// `verify`: prints each problem; `Ok(false)` when there is any.
pub async fn verify(from: &str, pick: Option<&str>, json: bool) -> Result<bool, Error> {
    let repo = open_source(from)?;
    let id = match pick {
        Some(id) => id.to_string(),
        None => repo.open_latest().await?.id().to_string(),
    };
    let report = repo.verify(&id).await?;
    summary::print_verify(repo.location(), &report, json);
    Ok(report.is_ok())
}

/// `list`: every backup prefix (complete, in progress, abandoned, unreadable), newest
/// first; `Ok(false)` when one needs attention (abandoned or unreadable).
pub async fn list(from: &str, json: bool) -> Result<bool, Error> {
    let repo = open_source(from)?;
    let states = repo.list_all().await?;
    let report = listing::ListReport::new(repo.location(), states, chrono::Utc::now());
    report.print(json);
    Ok(report.ok)
}

/// `clean`: removes the incomplete backups no running backup owns; says what it removed
/// and what it left.
pub async fn clean(from: &str, json: bool) -> Result<bool, Error> {
    let repo = open_source(from)?;
    let before = repo.list_all().await?;
    let removed = repo.clean_incomplete().await?;
    let report = listing::CleanReport::new(repo.location(), before, &removed, chrono::Utc::now());
    report.print(json);
    Ok(true)
}
