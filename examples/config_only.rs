//! `config_only`: option 1 through the library alone. Backs up Sourcegraph's configuration
//! (site configuration, code host connections, global settings: JSONC kept byte for byte)
//! from the main database or from files, and restores it into a database (as new revisions,
//! the way the web UI saves them) or into files.
//!
//! ```text
//! cargo run --example config_only -- backup --config-db postgres://sg@db/sg --to ./backups
//! cargo run --example config_only -- restore --from ./backups --config-files ./restored
//! cargo run --example config_only -- restore --from ./backups --config-db postgres://sg@new-db/sg --dry-run
//! ```
//!
//! The `sourcegraph-backup` command does the same with `--option config`, and more.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser};
use sourcegraph_backup::core::redact::redact_text;
use sourcegraph_backup::core::{BackupOption, BackupRepository, ProgressSink};
use sourcegraph_backup::deployment::{parse_connection, Instance, RestoreOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Back up and restore Sourcegraph's configuration.
#[derive(Parser)]
#[command(name = "config_only")]
enum Cli {
    /// Back up the configuration into REPO.
    Backup {
        #[command(flatten)]
        place: Place,
        /// Where to write the backup: a directory or a URL (s3://, gs://, az://).
        #[arg(long, value_name = "REPO")]
        to: String,
    },
    /// Restore the configuration of a backup.
    Restore {
        #[command(flatten)]
        place: Place,
        /// Where the backups are.
        #[arg(long, value_name = "REPO")]
        from: String,
        /// The backup to restore (default: the newest complete one).
        #[arg(long, value_name = "ID")]
        backup: Option<String>,
        /// Show what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replace configuration files that exist.
        #[arg(long)]
        clean: bool,
    },
}

/// Where the configuration is, or goes.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct Place {
    /// The Sourcegraph main database: postgres://USER[:PASSWORD]@HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    config_db: Option<String>,
    /// A directory with site-config.json, global-settings.json and extsvc-config.json.
    #[arg(long, value_name = "DIR")]
    config_files: Option<PathBuf>,
}

/// The deployment whose configuration is at `place`.
fn instance(place: &Place) -> Result<Instance, Error> {
    let instance = Instance::docker_compose().carry_encrypted(true);
    Ok(match (&place.config_db, &place.config_files) {
        (Some(url), _) => instance.config_database(parse_connection(url)?),
        (None, Some(dir)) => instance.config_files(dir),
        (None, None) => return Err("say where the configuration is: --config-db or --config-files".into()),
    })
}

async fn run(cli: Cli) -> Result<String, Error> {
    match cli {
        Cli::Backup { place, to } => {
            let backup = instance(&place)?.plan(BackupOption::ConfigOnly)?;
            let summary = backup
                .run(BackupRepository::open(&to)?, ProgressSink::disabled())
                .await?;
            Ok(summary.to_string())
        }
        Cli::Restore {
            place,
            from,
            backup,
            dry_run,
            clean,
        } => {
            let repo = BackupRepository::open(&from)?;
            let backup = match backup {
                Some(id) => repo.open_backup(&id).await?,
                None => repo.open_latest().await?,
            };
            let options = RestoreOptions::new().dry_run(dry_run).clean(clean);
            let restore = instance(&place)?.restore(backup, &options)?;
            Ok(restore.run(ProgressSink::disabled()).await?.to_string())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(summary) => {
            println!("{}", redact_text(&summary));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", redact_text(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}
