//! `config_only`: back up and restore Sourcegraph's configuration only (option 1):
//! site configuration, code host connections and global settings.
//!
//! ```text
//! cargo run --release --example config_only -- backup --config-db postgres://sg@db/sg --to ./backups
//! cargo run --release --example config_only -- restore --from ./backups --config-files ./restored
//! ```

#[path = "cli/mod.rs"]
mod cli;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cli::args::{
    CleanArgs, ConfigArgs, Databases, DryRun, From, Jobs, ListArgs, Output, Pick, To, VerifyArgs,
};
use cli::stores::{self, StoreHandle};
use cli::{Error, Usage};
use sourcegraph_backup::core::{plan, BackupOption, Deployment, PlanRequest};

/// Back up and restore Sourcegraph's configuration: site configuration, code host
/// connections and global settings, read from the main database or from files.
#[derive(Parser)]
#[command(name = "config_only", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Back up the configuration into DEST.
    Backup(BackupArgs),
    /// Restore the configuration of a backup into a database or a directory of files.
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

/// Where the configuration is: `--config-db`, `--config-files` or `--from-env`.
#[derive(Args)]
struct Place {
    #[command(flatten)]
    config: ConfigArgs,
    /// Use the main database named by the PG* environment variables.
    #[arg(long, conflicts_with_all = ["config_db", "config_files"])]
    from_env: bool,
    /// Carry code host connections that are encrypted at rest as ciphertext (restorable
    /// only into an instance configured with the same encryption keys) instead of failing.
    #[arg(long)]
    carry_encrypted: bool,
}

#[derive(Args)]
struct BackupArgs {
    #[command(flatten)]
    to: To,
    #[command(flatten)]
    place: Place,
    #[command(flatten)]
    jobs: Jobs,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct RestoreArgs {
    #[command(flatten)]
    from: From,
    #[command(flatten)]
    pick: Pick,
    #[command(flatten)]
    place: Place,
    #[command(flatten)]
    dry_run: DryRun,
    /// Replace configuration files that already exist in the --config-files directory;
    /// without it, existing files are refused before anything is written. (A database keeps
    /// its earlier revisions either way.)
    #[arg(long)]
    clean: bool,
    #[command(flatten)]
    jobs: Jobs,
    #[command(flatten)]
    output: Output,
}

fn config_store(place: &Place, dry_run: bool, clean: bool) -> Result<StoreHandle, Error> {
    let dbs = Databases {
        from_env: place.from_env,
        ..Databases::default()
    };
    match stores::config_place(&place.config, &dbs)? {
        Some(p) => stores::config_into(p, dry_run, place.carry_encrypted, clean),
        None => Err(Usage(
            "say where the configuration is: --config-db URL, --config-files DIR or --from-env".into(),
        )
        .into()),
    }
}

async fn backup(args: BackupArgs) -> Result<bool, Error> {
    let store = config_store(&args.place, false, false)?;
    let plan = plan(&PlanRequest::new(
        BackupOption::ConfigOnly,
        Deployment::DockerCompose,
    ));
    let summary = cli::backup(&args.to.to, plan, vec![store], args.jobs.get()).await?;
    summary.print(args.output.json);
    Ok(true)
}

async fn restore(args: RestoreArgs) -> Result<bool, Error> {
    let store = config_store(&args.place, args.dry_run.dry_run, args.clean)?;
    let backup = cli::open_backup(&args.from.from, args.pick.backup.as_deref()).await?;
    let targets = cli::Targets {
        stores: vec![store],
        ..cli::Targets::default()
    };
    let summary = cli::restore(backup, targets, args.jobs.get(), args.dry_run.dry_run).await?;
    summary.print(args.output.json);
    Ok(true)
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    let (json, name) = match &cli.command {
        Command::Backup(a) => (a.output.json, "backup"),
        Command::Restore(a) => (a.output.json, "restore"),
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
