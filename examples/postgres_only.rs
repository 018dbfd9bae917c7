//! `postgres_only`: option 2 through the library alone. Backs up Sourcegraph's three
//! PostgreSQL databases (and the configuration they hold) and restores them into empty
//! databases of a new server, as consistent logical dumps.
//!
//! ```text
//! cargo run --release --example postgres_only -- backup --pgsql postgres://sg@db/sg --to ./backups
//! cargo run --release --example postgres_only -- restore --from ./backups \
//!     --pgsql postgres://sg@new-db/sg --codeintel postgres://sg@new-db/codeintel
//! ```
//!
//! `--pgsql` (not recreatable) is required; the others are left out, with the reason, when
//! not given. `sourcegraph-backup --option postgres` does the same, and more.

use std::process::ExitCode;

use clap::{Args, Parser};
use sourcegraph_backup::core::model::Database;
use sourcegraph_backup::core::redact::redact_text;
use sourcegraph_backup::core::{BackupOption, BackupRepository, ProgressEvent, ProgressSink};
use sourcegraph_backup::deployment::{Instance, RestoreOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Back up and restore Sourcegraph's PostgreSQL databases.
#[derive(Parser)]
#[command(name = "postgres_only")]
enum Cli {
    /// Back up the databases into REPO.
    Backup {
        #[command(flatten)]
        databases: Databases,
        /// Where to write the backup: a directory or a URL (s3://, gs://, az://).
        #[arg(long, value_name = "REPO")]
        to: String,
    },
    /// Restore the newest backup under REPO into empty databases.
    Restore {
        #[command(flatten)]
        databases: Databases,
        /// Where the backups are.
        #[arg(long, value_name = "REPO")]
        from: String,
        /// Drop what non-empty target databases hold first.
        #[arg(long)]
        clean: bool,
    },
}

/// The three databases.
#[derive(Args)]
struct Databases {
    /// The main database: postgres://USER[:PASSWORD]@HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    pgsql: Option<String>,
    /// The code intelligence database.
    #[arg(long, value_name = "URL")]
    codeintel: Option<String>,
    /// The code insights database.
    #[arg(long, value_name = "URL")]
    codeinsights: Option<String>,
    /// The others from Sourcegraph's environment: PG*, CODEINTEL_PG*, CODEINSIGHTS_PG*.
    #[arg(long)]
    from_env: bool,
}

/// The deployment whose databases the flags give.
fn instance(dbs: &Databases) -> Result<Instance, Error> {
    let mut instance = Instance::docker_compose();
    for (db, url) in [
        (Database::Frontend, &dbs.pgsql),
        (Database::CodeIntel, &dbs.codeintel),
        (Database::CodeInsights, &dbs.codeinsights),
    ] {
        if let Some(url) = url {
            instance = instance.database_url(db, url)?;
        }
    }
    if dbs.from_env {
        return Ok(instance.databases_from_env()?);
    }
    Ok(instance)
}

/// A progress sink that prints each table as its rows go by, and each database when done.
fn progress() -> ProgressSink {
    let (sink, mut events) = ProgressSink::channel();
    tokio::spawn(async move {
        let mut last = String::new();
        while let Some(event) = events.recv().await {
            match event {
                ProgressEvent::Rows { store, table, .. } if table != last => {
                    eprintln!("{store}: {table}");
                    last = table;
                }
                ProgressEvent::StoreFinished { store, error } => {
                    eprintln!("{store}: {}", error.unwrap_or_else(|| "done".into()))
                }
                _ => {}
            }
        }
    });
    sink
}

async fn run(cli: Cli) -> Result<String, Error> {
    match cli {
        Cli::Backup { databases, to } => {
            let backup = instance(&databases)?.plan(BackupOption::AllPostgres)?;
            let repo = BackupRepository::open(&to)?;
            Ok(backup.run(repo, progress()).await?.to_string())
        }
        Cli::Restore {
            databases,
            from,
            clean,
        } => {
            let latest = BackupRepository::open(&from)?.open_latest().await?;
            let options = RestoreOptions::new().clean(clean);
            let restore = instance(&databases)?.restore(latest, &options)?;
            Ok(restore.run(progress()).await?.to_string())
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
