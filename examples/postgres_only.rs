//! `postgres_only`: back up and restore Sourcegraph's three PostgreSQL databases
//! (option 2), with the configuration they hold.
//!
//! ```text
//! cargo run --release --example postgres_only -- backup --from-env --to s3://bucket/sourcegraph
//! cargo run --release --example postgres_only -- restore --from s3://bucket/sourcegraph \
//!     --pgsql postgres://sg@new-db/sg --codeintel postgres://sg@new-db/codeintel \
//!     --codeinsights postgres://postgres@new-insights/postgres
//! ```

#[path = "cli/mod.rs"]
mod cli;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cli::args::{CleanArgs, Externals, ListArgs, PgBackupArgs, PgRestoreArgs, VerifyArgs};
use cli::instance;
use cli::Error;
use sourcegraph_backup::core::{BackupOption, Deployment, PlanRequest};

/// Back up and restore Sourcegraph's PostgreSQL databases (main, code intelligence,
/// code insights) and the configuration they hold. A backup takes the databases it is
/// given (--pgsql is required unless marked --external; the others are left out when not
/// given). Configuration is read from the --pgsql database unless --config-db or
/// --config-files says otherwise; a restore leaves it in the restored main database (its
/// dump holds it) and applies it only to a --config-db or --config-files target.
#[derive(Parser)]
#[command(name = "postgres_only", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Back up the databases into DEST.
    Backup(BackupArgs),
    /// Restore a backup into empty databases (restored in parallel), then the configuration
    /// into --config-db or --config-files when given.
    Restore(PgRestoreArgs),
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
    externals: Externals,
}

async fn backup(args: BackupArgs) -> Result<bool, Error> {
    let mut request = PlanRequest::new(BackupOption::AllPostgres, Deployment::DockerCompose);
    request.external = args.externals.external.iter().cloned().collect();
    let (plan, stores) = instance::backup_plan(&args.pg, request)?;
    instance::nothing_to_back_up(&plan)?;
    let summary = cli::backup(&args.pg.to.to, plan, stores, args.pg.jobs.get()).await?;
    summary.print(args.pg.output.json);
    Ok(true)
}

async fn restore(args: PgRestoreArgs) -> Result<bool, Error> {
    let backup = cli::open_backup(&args.from.from, args.pick.backup.as_deref()).await?;
    let targets = instance::restore_targets(&args, &backup)?;
    let summary = cli::restore(backup, targets, args.jobs.get(), args.dry_run.dry_run).await?;
    summary.print(args.output.json);
    Ok(true)
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    let (json, name) = match &cli.command {
        Command::Backup(a) => (a.pg.output.json, "backup"),
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
