//! The verbs: flags in, library calls, reports out.

use std::future::Future;

use sourcegraph_backup::core::model::Database;
use sourcegraph_backup::core::{
    BackupOption, BackupReader, BackupRepository, CoreError, ForgetReport, RetentionPolicy,
};
use sourcegraph_backup::deployment::{
    parse_connection, ConfigSource, DeploymentError, Instance, PlanProblem, RestoreOptions,
};
use sourcegraph_backup::pg::compare::{compare as pg_compare, CompareOptions, CompareReport};
use sourcegraph_backup::pg::PgConnectionConfig;
use sourcegraph_backup::report::{CleanReport, ListReport, PlanReport, Summary, VerifySummary};

use crate::args::{
    BackupArgs, CompareArgs, ConfigPlace, Databases, ForgetArgs, PlanArgs, RepoArgs, RestoreArgs, Source,
    VerifyArgs, Volumes,
};
use crate::out;
use crate::progress::Progress;
use crate::run::{Error, Interrupted, PartlyDone, Usage, EXIT_INTERRUPTED};

/// The flag that gives database `db`.
fn flag_of(db: Database) -> &'static str {
    match db {
        Database::Frontend => "--pgsql",
        Database::CodeIntel => "--codeintel",
        Database::CodeInsights => "--codeinsights",
    }
}

/// Prints a report: its table, or one JSON object.
fn print<T: serde::Serialize + std::fmt::Display>(report: &T, json: bool) {
    if json {
        out::json(report);
    } else {
        out::line(report.to_string());
    }
}

/// `instance` with the databases, configuration and volumes the flags give.
fn with_places(
    mut instance: Instance,
    dbs: &Databases,
    config: &ConfigPlace,
    volumes: &Volumes,
) -> Result<Instance, Error> {
    for db in Database::ALL {
        let url = match db {
            Database::Frontend => dbs.pgsql.as_deref(),
            Database::CodeIntel => dbs.codeintel.as_deref(),
            Database::CodeInsights => dbs.codeinsights.as_deref(),
        };
        if let Some(url) = url {
            let conn = parse_connection(url).map_err(|e| format!("{}: {e}", flag_of(db)))?;
            instance = instance.database(db, conn);
        }
    }
    if dbs.from_env {
        instance = instance.databases_from_env()?;
    }
    if let Some(url) = &config.config_db {
        let conn = parse_connection(url).map_err(|e| format!("--config-db: {e}"))?;
        instance = instance.config_database(conn);
    }
    if let Some(dir) = &config.config_files {
        instance = instance.config_files(dir);
    }
    for (name, path) in &volumes.volumes {
        instance = instance.volume(name, path)?;
    }
    if let Some(root) = &volumes.volumes_root {
        instance = instance.volumes_root(root);
    }
    Ok(instance)
}

/// The deployment a backup (or plan) reads.
fn source_instance(s: &Source, jobs: u16) -> Result<Instance, Error> {
    let mut instance = Instance::new(s.deployment)
        .jobs(usize::from(jobs))
        .skip_recreatable(s.skip_recreatable)
        .databases_stopped(s.databases_stopped)
        .allow_generic(s.allow_generic)
        .carry_encrypted(s.carry_encrypted);
    for name in &s.external {
        instance = instance.external(name);
    }
    with_places(instance, &s.databases, &s.config, &s.volumes)
}

/// What a plan problem asks of the command line.
fn problem_hint(problem: &PlanProblem, option: BackupOption) -> String {
    match problem {
        PlanProblem::NotGiven { store } if store == "config" => format!(
            "{store} (the configuration, not recreatable): give --config-db URL or --config-files DIR{}, or leave it out with --external config",
            if option == BackupOption::ConfigOnly { ", --pgsql URL or --from-env" } else { "" }
        ),
        PlanProblem::NotGiven { store } if store == "pgsql" => format!(
            "{store} (the main database, not recreatable): give --pgsql URL or --from-env, or leave it out with --external pgsql"
        ),
        PlanProblem::NotGiven { store } => {
            format!("{store}: give its location, or leave it out with --external {store}")
        }
        PlanProblem::UnknownVolume { volume } => {
            format!("--volume {volume}: not a volume of the deployment (see --deployment)")
        }
        PlanProblem::VolumeOutsideOption { volume } => {
            format!("--volume {volume}: only --option all backs up volumes")
        }
        PlanProblem::NothingToBackUp => {
            "nothing to back up: every store is left out; give --pgsql, --codeintel or --codeinsights URL, or --from-env"
                .to_string()
        }
        other => other.to_string(),
    }
}

/// The problems of a plan, phrased as the flags that fix them: the stores not given in one
/// sentence, the volumes without a directory in another, then the rest.
fn problem_lines(problems: &[PlanProblem], option: BackupOption) -> Vec<String> {
    let needs: Vec<String> = problems
        .iter()
        .filter(|p| matches!(p, PlanProblem::NotGiven { .. }))
        .map(|p| problem_hint(p, option))
        .collect();
    let dirless: Vec<&str> = problems
        .iter()
        .filter_map(|p| match p {
            PlanProblem::VolumeWithoutDirectory { volume } => Some(volume.as_str()),
            _ => None,
        })
        .collect();
    let mut lines = Vec::new();
    if !needs.is_empty() {
        lines.push(format!("the backup needs {}", needs.join("; ")));
    }
    if !dirless.is_empty() {
        lines.push(format!(
            "the backup includes volumes without a directory: {}; give --volume NAME=PATH for each \
             (or --volumes-root DIR), or leave them out with --external NAME",
            dirless.join(", ")
        ));
    }
    lines.extend(
        problems
            .iter()
            .filter(|p| {
                !matches!(
                    p,
                    PlanProblem::NotGiven { .. } | PlanProblem::VolumeWithoutDirectory { .. }
                )
            })
            .map(|p| problem_hint(p, option)),
    );
    lines
}

/// The usage error of a plan that cannot run.
fn plan_usage(problems: &[PlanProblem], option: BackupOption) -> Usage {
    Usage(problem_lines(problems, option).join("; "))
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
                    "interrupted again: exiting before the backup was removed; `sourcegraph-backup clean --from REPO` removes it",
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

/// `backup`.
pub async fn backup(args: BackupArgs) -> Result<bool, Error> {
    let option = args.option.option();
    let instance = source_instance(&args.source, args.jobs.jobs)?;
    let planned = match instance.plan(option) {
        Ok(p) => p,
        Err(DeploymentError::Plan { problems }) => return Err(plan_usage(&problems, option).into()),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(
        option = %option,
        stores = planned.stores().len(),
        "planned the backup; checking that every store can be reached"
    );
    planned.preflight().await?;
    let repo = BackupRepository::open(&args.to)?;
    tracing::info!(repository = %repo.location(), "backing up");
    let (sink, progress) = Progress::start(args.progress.progress, "backup");
    let interrupt = interrupt_signal()?;
    let result = planned
        .pipeline(repo.clone())
        .progress(sink)
        .run_until(interrupt)
        .await;
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
    let locations = planned
        .stores()
        .iter()
        .map(|s| (s.id().to_string(), s.location()))
        .collect();
    let summary = Summary::of_backup(repo.location(), &outcome, &locations);
    print(&summary, args.output.json);
    Ok(true)
}

/// `plan`: the report, and the problems phrased as the flags that fix them.
pub async fn plan(args: PlanArgs) -> Result<bool, Error> {
    let option = args.option.option();
    let instance = source_instance(&args.source, 1)?;
    let report: PlanReport = instance.describe(option);
    if args.output.json {
        out::json(&report);
    } else {
        let mut shown = report.clone();
        shown.problems.clear();
        let text = shown.to_string();
        // Without the library's "can run" line when there are problems: ours follow.
        let text = if report.problems.is_empty() {
            text
        } else {
            text.trim_end_matches("\nthe backup can run as described")
                .to_string()
        };
        out::line(text);
        for line in problem_lines(&report.problems, option) {
            out::line(format!("problem: {line}"));
        }
    }
    Ok(report.ok)
}

/// Opens a repository to read from; a local path must exist (opening would create it).
fn open_source(from: &str) -> Result<BackupRepository, Error> {
    if !from.contains("://") && !std::path::Path::new(from).is_dir() {
        return Err(format!("backup location {from} does not exist or is not a directory").into());
    }
    Ok(BackupRepository::open(from)?)
}

/// Opens backup `pick`, or the newest complete one.
async fn open_backup(from: &str, pick: Option<&str>) -> Result<BackupReader, Error> {
    let repo = open_source(from)?;
    Ok(match pick {
        Some(id) => repo.open_backup(id).await?,
        None => repo.open_latest().await?,
    })
}

/// `restore`.
pub async fn restore(args: RestoreArgs) -> Result<bool, Error> {
    let mut options = RestoreOptions::new()
        .clean(args.clean)
        .force(args.force)
        .dry_run(args.dry_run)
        .owners(args.owners)
        .grants(args.grants);
    for (source, target) in &args.role_map {
        options = options.map_role(source, target).map_err(|e| match e {
            DeploymentError::RoleMappedTwice { role, first, second } => Usage(format!(
                "--role-map maps role {role} twice ({first} and {second}): give it once"
            )),
            other => Usage(other.to_string()),
        })?;
    }
    let instance = with_places(
        Instance::docker_compose().jobs(usize::from(args.jobs.jobs)),
        &args.databases,
        &args.config,
        &args.volumes,
    )?;
    let backup = open_backup(&args.from.from, args.pick.backup.as_deref()).await?;
    let location = backup.repository().location().to_string();
    let id = backup.id().to_string();
    let planned = instance.restore(backup, &options).map_err(|e| -> Error {
        match e {
            DeploymentError::NotInBackup { backup, what, store } => {
                let flag = match Database::from_store_id(&store) {
                    Some(db) => flag_of(db).to_string(),
                    None if what == "volume" => format!("--volume {store}=..."),
                    None => "--config-db / --config-files".to_string(),
                };
                Usage(format!("backup {backup} holds no {what} {store}: drop {flag}")).into()
            }
            DeploymentError::NothingToRestore { backup } => Usage(format!(
                "nothing to restore into: give a target for at least one store of backup {backup} \
                 (--pgsql, --codeintel, --codeinsights, --from-env, --config-db, --config-files, --volume)"
            ))
            .into(),
            other => other.into(),
        }
    })?;
    tracing::info!(backup = %id, targets = planned.targets().len(), "restoring");
    let (sink, progress) = Progress::start(args.progress.progress, "restore");
    let result = planned.run(sink).await;
    progress.finish().await;
    match result {
        Ok(summary) => {
            print(&summary, args.output.json);
            Ok(true)
        }
        Err(DeploymentError::PartlyRestored(partial)) => {
            let mut message = partial.to_string();
            let rerun: Vec<String> = partial
                .failed
                .iter()
                .filter_map(|store| match (store.as_str(), planned.config_target()) {
                    ("config", Some(ConfigSource::Files(dir))) => Some(format!(
                        "sourcegraph-backup restore --from {location} --backup {id} --config-files {}",
                        dir.display()
                    )),
                    ("config", Some(_)) => Some(format!(
                        "sourcegraph-backup restore --from {location} --backup {id} --config-db URL"
                    )),
                    _ => None,
                })
                .collect();
            if !partial.restored.is_empty() && !rerun.is_empty() {
                message.push_str(&format!(
                    "; once the cause below is fixed, re-run only {}: {}",
                    partial.failed.join(", "),
                    rerun.join("; ")
                ));
            }
            let summary = partial.summary.as_ref().clone();
            let source: Error = Box::new(partial.source);
            Err(Box::new(PartlyDone::new(&summary, message, source)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `verify`: prints each problem; `Ok(false)` when there is any.
pub async fn verify(args: VerifyArgs) -> Result<bool, Error> {
    let repo = open_source(&args.from.from)?;
    let id = match args.pick.backup {
        Some(id) => id,
        None => repo.open_latest().await?.id().to_string(),
    };
    let report = VerifySummary::new(repo.location(), &repo.verify(&id).await?);
    print(&report, args.output.json);
    Ok(report.ok)
}

/// `list`: every backup prefix, newest first; `Ok(false)` when one needs attention.
pub async fn list(args: RepoArgs) -> Result<bool, Error> {
    let repo = open_source(&args.from.from)?;
    let report = ListReport::new(repo.location(), repo.list_all().await?, chrono::Utc::now());
    print(&report, args.output.json);
    Ok(report.ok)
}

/// `clean`: removes the incomplete backups no running backup owns.
pub async fn clean(args: RepoArgs) -> Result<bool, Error> {
    let repo = open_source(&args.from.from)?;
    let before = repo.list_all().await?;
    let removed = repo.clean_incomplete().await?;
    let report = CleanReport::new(repo.location(), before, &removed, chrono::Utc::now());
    print(&report, args.output.json);
    Ok(true)
}

/// One pair of databases `compare` compares.
struct Pair {
    database: Database,
    source: PgConnectionConfig,
    target: PgConnectionConfig,
}

/// The pairs the flags give: `--pgsql` with `--with`, `--codeintel` with `--codeintel-with`,
/// `--codeinsights` with `--codeinsights-with`; `--with` also pairs with the only database
/// given.
fn compare_pairs(args: &CompareArgs) -> Result<Vec<Pair>, Error> {
    let sources = [
        (Database::Frontend, &args.pgsql, &args.with),
        (Database::CodeIntel, &args.codeintel, &args.codeintel_with),
        (
            Database::CodeInsights,
            &args.codeinsights,
            &args.codeinsights_with,
        ),
    ];
    for (db, source, own_target) in &sources {
        if *db != Database::Frontend && source.is_none() && own_target.is_some() {
            let flag = flag_of(*db);
            return Err(Usage(format!(
                "{flag}-with needs {flag} URL: the database to compare with it"
            ))
            .into());
        }
    }
    let given = sources.iter().filter(|(_, s, _)| s.is_some()).count();
    if given == 0 {
        return Err(Usage(
            "give the databases to compare: --pgsql URL --with URL (or --codeintel URL --codeintel-with URL, \
             --codeinsights URL --codeinsights-with URL)"
                .into(),
        )
        .into());
    }
    let mut pairs = Vec::new();
    let mut with_used = args.pgsql.is_some();
    for (db, source, own_target) in sources {
        let flag = flag_of(db);
        let with_flag = match db {
            Database::Frontend => "--with".to_string(),
            _ => format!("{flag}-with"),
        };
        let target = match (own_target, db) {
            (Some(t), _) => Some(t),
            (None, Database::Frontend) => None,
            (None, _) if given == 1 && args.pgsql.is_none() && source.is_some() => {
                with_used = args.with.is_some();
                args.with.as_ref()
            }
            (None, _) => None,
        };
        match (source, target) {
            (Some(source), Some(target)) => pairs.push(Pair {
                database: db,
                source: parse_connection(source).map_err(|e| format!("{flag}: {e}"))?,
                target: parse_connection(target).map_err(|e| format!("{with_flag}: {e}"))?,
            }),
            (Some(_), None) => {
                return Err(Usage(format!(
                    "{flag} needs {with_flag} URL: the database to compare it with"
                ))
                .into())
            }
            (None, _) => {}
        }
    }
    if args.with.is_some() && !with_used {
        return Err(Usage("--with pairs with --pgsql, or with the only database given".into()).into());
    }
    Ok(pairs)
}

/// What `compare` found for one pair of databases.
#[derive(serde::Serialize)]
struct Compared {
    /// `pgsql`, `codeintel-db` or `codeinsights-db`.
    database: String,
    /// Whether nothing differs.
    identical: bool,
    /// The differences, one line each.
    differences: Vec<String>,
    /// The library's full report.
    report: CompareReport,
}

/// What `compare` prints with `--json`.
#[derive(serde::Serialize)]
struct CompareOutput {
    command: &'static str,
    /// Whether every pair is identical.
    ok: bool,
    databases: Vec<Compared>,
}

impl std::fmt::Display for CompareOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, c) in self.databases.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(
                f,
                "{}: {} / {}",
                c.database, c.report.source.endpoint, c.report.target.endpoint
            )?;
            write!(f, "{}", c.report)?;
        }
        Ok(())
    }
}

/// `compare`: exit 0 when every pair is identical, 1 with the differences listed.
pub async fn compare(args: CompareArgs) -> Result<bool, Error> {
    let pairs = compare_pairs(&args)?;
    let options = CompareOptions::default()
        .schema(!args.skip_schema)
        .jobs(usize::from(args.jobs));
    let mut databases = Vec::new();
    for pair in pairs {
        tracing::info!(database = %pair.database, "comparing");
        let report = pg_compare(&pair.source, &pair.target, &options)
            .await
            .map_err(|e| format!("comparing {}: {e}", pair.database))?;
        databases.push(Compared {
            database: pair.database.to_string(),
            identical: report.is_identical(),
            differences: report.differences(),
            report,
        });
    }
    let output = CompareOutput {
        command: "compare",
        ok: databases.iter().all(|d| d.identical),
        databases,
    };
    print(&output, args.output.json);
    Ok(output.ok)
}

/// What `forget` prints with `--json`.
#[derive(serde::Serialize)]
struct ForgetOutput {
    command: &'static str,
    ok: bool,
    location: String,
    #[serde(flatten)]
    report: ForgetReport,
}

impl std::fmt::Display for ForgetOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.report)?;
        let verb = if self.report.dry_run {
            "would remove"
        } else {
            "removed"
        };
        write!(
            f,
            "forget {}: {} kept, {} {verb}{}",
            self.location,
            self.report.kept.len(),
            self.report.removed.len(),
            if self.report.dry_run {
                " (dry run: nothing was removed)"
            } else {
                ""
            }
        )
    }
}

/// `forget`: applies the retention policy.
pub async fn forget(args: ForgetArgs) -> Result<bool, Error> {
    let repo = open_source(&args.from.from)?;
    let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    let mut policy = RetentionPolicy::new()
        .keep_last(count(args.keep_last))
        .allow_removing_last(args.allow_removing_all);
    if let Some(n) = args.keep_daily {
        policy = policy.keep_daily(count(n));
    }
    if let Some(n) = args.keep_weekly {
        policy = policy.keep_weekly(count(n));
    }
    if let Some(n) = args.keep_monthly {
        policy = policy.keep_monthly(count(n));
    }
    let report = repo.forget(&policy, args.dry_run).await?;
    let output = ForgetOutput {
        command: "forget",
        ok: true,
        location: repo.location().to_string(),
        report,
    };
    print(&output, args.output.json);
    Ok(true)
}
