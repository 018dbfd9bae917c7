//! `all_data`: back up and restore everything a Sourcegraph instance keeps
//! (option 3): the three databases, the configuration, and every persistent
//! volume of the deployment.
//!
//! ```text
//! cargo run --release --example all_data -- backup --from-env --deployment compose --to ./backups
//! cargo run --release --example all_data -- restore --from ./backups --from-env \
//!     --volume gitserver-0=/mnt/new/gitserver-0 --volume prometheus-v2=/mnt/new/prometheus
//! ```

#[path = "cli/mod.rs"]
mod cli;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cli::args::{CleanArgs, ListArgs, PgBackupArgs, PgRestoreArgs, PlanArgs, VerifyArgs, Volumes};
use cli::stores::{self, StoreHandle, Tuning};
use cli::{instance, Error, Usage};
use sourcegraph_backup::core::catalog::volume_for_name;
use sourcegraph_backup::core::plan::{PlannedStore, VolumeMethod};
use sourcegraph_backup::core::{
    BackupManifest, BackupOption, Decision, Deployment, Plan, PlanRequest, StoreKind,
};
use sourcegraph_backup::volumes::{VolumePreset, DOCKER_VOLUMES_ROOT};

/// Back up and restore all of a Sourcegraph instance's data: the PostgreSQL databases,
/// the configuration, and the persistent volumes of the deployment (git repositories,
/// search indexes, Redis, Prometheus, Grafana, blobstore, ...). Give each volume's
/// directory with --volume NAME=PATH; on Docker Compose, volumes found under
/// /var/lib/docker/volumes are used without it.
#[derive(Parser)]
#[command(name = "all_data", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Back up databases, configuration and volumes into DEST.
    Backup(BackupArgs),
    /// Restore a backup: databases, then configuration (into --config-db or --config-files
    /// when given), then volumes into empty directories.
    Restore(RestoreArgs),
    /// Re-read every artifact of a backup and check its size and SHA-256.
    Verify(VerifyArgs),
    /// List every backup under DEST, newest first: complete, in progress, abandoned
    /// (interrupted or failed, with its age) and unreadable (with the reason). Exits 1 when
    /// one needs attention (abandoned or unreadable).
    List(ListArgs),
    /// Remove the incomplete backups under DEST that no running backup owns (interrupted
    /// or failed ones); running backups are left alone.
    Clean(CleanArgs),
}

#[derive(Args)]
struct BackupArgs {
    #[command(flatten)]
    pg: PgBackupArgs,
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    volumes: Volumes,
}

#[derive(Args)]
struct RestoreArgs {
    #[command(flatten)]
    pg: PgRestoreArgs,
    #[command(flatten)]
    volumes: Volumes,
}

/// The directory of each volume the plan archives: `--volume`, else the
/// Compose preset when that directory exists. Further shards given with
/// `--volume` (`gitserver-1`) join the plan beside their kind's volume.
fn volume_stores(
    args: &BackupArgs,
    plan: &mut Plan,
    deployment: Deployment,
) -> Result<Vec<StoreHandle>, Error> {
    let given: BTreeMap<&str, &PathBuf> = args
        .volumes
        .volumes
        .iter()
        .map(|(n, p)| (n.as_str(), p))
        .collect();
    let tuning = Tuning {
        jobs: args.pg.jobs.get(),
        ..Tuning::default()
    };
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for v in &plan.volumes {
        if v.decision != Decision::Included || v.method != VolumeMethod::Archive {
            continue;
        }
        let preset = (deployment == Deployment::DockerCompose)
            .then(|| VolumePreset::docker_compose(DOCKER_VOLUMES_ROOT).path_for(&v.name))
            .filter(|p| p.is_dir());
        match given.get(v.name.as_str()).map(|p| (*p).clone()).or(preset) {
            Some(path) => out.push(stores::volume(&v.name, &path, deployment, tuning)),
            None => missing.push(v.name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Usage(format!(
            "the backup includes volumes without a directory: {}; give --volume NAME=PATH for each, or leave them out with --external NAME",
            missing.join(", ")
        ))
        .into());
    }
    for (name, path) in &given {
        if plan.volumes.iter().any(|v| v.name == *name) {
            continue;
        }
        let Some(kind) = volume_for_name(deployment, name) else {
            return Err(Usage(format!("{name} is not a volume of the {deployment:?} deployment")).into());
        };
        let Some(base) = plan
            .stores
            .iter()
            .find(|s| s.id == kind.name && s.kind == StoreKind::Volume)
            .cloned()
        else {
            continue; // its kind is skipped, and so is this shard
        };
        plan.stores.push(PlannedStore {
            id: (*name).to_string(),
            ..base
        });
        out.push(stores::volume(name, path, deployment, tuning));
    }
    Ok(out)
}

async fn backup(args: BackupArgs) -> Result<bool, Error> {
    let deployment = args.plan.deployment.deployment();
    let mut request = PlanRequest::new(BackupOption::AllData, deployment);
    request.external = args.plan.externals.external.iter().cloned().collect();
    request.skip_recreatable = args.plan.skip_recreatable;
    request.databases_stopped = args.plan.databases_stopped;
    let (mut plan, mut stores) = instance::backup_plan(&args.pg, request)?;
    stores.extend(volume_stores(&args, &mut plan, deployment)?);
    instance::nothing_to_back_up(&plan)?;
    let summary = cli::backup(&args.pg.to.to, plan, stores, args.pg.jobs.get()).await?;
    summary.print(args.pg.output.json);
    Ok(true)
}

/// Volume targets: every `--volume` must name a volume of the backup.
fn volume_targets(args: &RestoreArgs, manifest: &BackupManifest) -> Result<Vec<StoreHandle>, Error> {
    let deployment = manifest
        .plan
        .as_ref()
        .map_or(Deployment::DockerCompose, |p| p.request.deployment);
    let tuning = Tuning {
        jobs: args.pg.jobs.get(),
        overwrite: args.pg.clean.clean,
        ..Tuning::default()
    };
    let mut out = Vec::new();
    for (name, path) in &args.volumes.volumes {
        if manifest.store(name).is_none_or(|s| s.kind != StoreKind::Volume) {
            return Err(Usage(format!("backup {} holds no volume {name}", manifest.backup_id)).into());
        }
        out.push(stores::volume(name, path, deployment, tuning));
    }
    Ok(out)
}

async fn restore(args: RestoreArgs) -> Result<bool, Error> {
    let backup = cli::open_backup(&args.pg.from.from, args.pg.pick.backup.as_deref()).await?;
    let mut targets = instance::restore_targets(&args.pg, &backup)?;
    if !args.pg.dry_run.dry_run {
        targets.stores.extend(volume_targets(&args, backup.manifest())?);
    }
    let summary = cli::restore(backup, targets, args.pg.jobs.get(), args.pg.dry_run.dry_run).await?;
    summary.print(args.pg.output.json);
    Ok(true)
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    let (json, name) = match &cli.command {
        Command::Backup(a) => (a.pg.output.json, "backup"),
        Command::Restore(a) => (a.pg.output.json, "restore"),
        Command::Verify(a) => (a.output.json, "verify"),
        Command::List(a) => (a.output.json, "list"),
        Command::Clean(a) => (a.output.json, "clean"),
    };
    cli::run(json, cli::usage_of::<Cli>(name), async move {
        match cli.command {
            Command::Backup(a) => backup(a).await,
            Command::Restore(a) => restore(a).await,
            Command::Verify(a) => cli::verify(&a.from.from, a.pick.backup.as_deref(), a.output.json).await,
            Command::List(a) => cli::list(&a.from.from, a.output.json).await,
            Command::Clean(a) => cli::clean(&a.from.from, a.output.json).await,
        }
    })
}
