//! `all_data`: option 3 through the library alone. Backs up everything a Sourcegraph
//! instance keeps: the databases (logical dumps), the configuration in them, and every
//! persistent volume of a Docker Compose or Kubernetes deployment (git repositories, search
//! indexes, Redis, Prometheus, ...); restores volumes into empty directories.
//!
//! ```text
//! cargo run --release --example all_data -- backup --from-env --to ./backups
//! cargo run --release --example all_data -- backup --pgsql postgres://sg@db/sg \
//!     --volume gitserver-0=/mnt/gitserver-0 --external zoekt-0-shared --to ./backups
//! cargo run --release --example all_data -- restore --from ./backups \
//!     --pgsql postgres://sg@new-db/sg --volume gitserver-0=/mnt/new/gitserver-0
//! ```
//!
//! On Docker Compose, volumes are found under /var/lib/docker/volumes; `--volume NAME=PATH`
//! points one elsewhere, `--external NAME` leaves it out. `sourcegraph-backup --option all`
//! does the same, and more.

use std::process::ExitCode;

use clap::{Args, Parser};
use sourcegraph_backup::core::model::Database;
use sourcegraph_backup::core::redact::redact_text;
use sourcegraph_backup::core::{BackupOption, BackupRepository, Deployment, ProgressEvent, ProgressSink};
use sourcegraph_backup::deployment::{Instance, RestoreOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Back up and restore all of a Sourcegraph instance's data.
#[derive(Parser)]
#[command(name = "all_data")]
enum Cli {
    /// Back up databases, configuration and volumes into REPO.
    Backup {
        #[command(flatten)]
        instance: Places,
        /// Where to write the backup: a directory or a URL (s3://, gs://, az://).
        #[arg(long, value_name = "REPO")]
        to: String,
    },
    /// Restore the newest backup under REPO: databases, then volumes.
    Restore {
        #[command(flatten)]
        instance: Places,
        /// Where the backups are.
        #[arg(long, value_name = "REPO")]
        from: String,
    },
}

/// Where the instance keeps its data.
#[derive(Args)]
struct Places {
    /// The main database: postgres://USER[:PASSWORD]@HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    pgsql: Option<String>,
    /// The databases from Sourcegraph's environment: PG*, CODEINTEL_PG*, CODEINSIGHTS_PG*.
    #[arg(long)]
    from_env: bool,
    /// How Sourcegraph is deployed: compose or kubernetes.
    #[arg(long, default_value = "compose")]
    deployment: Deployment,
    /// A volume and its directory. Repeatable.
    #[arg(long = "volume", value_name = "NAME=PATH")]
    volumes: Vec<String>,
    /// A store or volume that lives outside the deployment and is left out. Repeatable.
    #[arg(long, value_name = "NAME")]
    external: Vec<String>,
}

fn instance(places: &Places) -> Result<Instance, Error> {
    let mut instance = Instance::new(places.deployment);
    if let Some(url) = &places.pgsql {
        instance = instance.database_url(Database::Frontend, url)?;
    }
    if places.from_env {
        instance = instance.databases_from_env()?;
    }
    for spec in &places.volumes {
        instance = instance.volume_spec(spec)?;
    }
    for name in &places.external {
        instance = instance.external(name);
    }
    Ok(instance)
}

/// A progress sink that prints each store with the bytes it moved when it is done.
fn progress() -> ProgressSink {
    let (sink, mut events) = ProgressSink::channel();
    tokio::spawn(async move {
        let mut bytes = std::collections::BTreeMap::<String, u64>::new();
        while let Some(event) = events.recv().await {
            match event {
                ProgressEvent::Bytes { store, bytes: n } => *bytes.entry(store).or_default() += n,
                ProgressEvent::StoreFinished { store, error } => {
                    let mib = bytes.get(&store).copied().unwrap_or(0) >> 20;
                    eprintln!("{store}: {} ({mib} MiB)", error.unwrap_or_else(|| "done".into()))
                }
                _ => {}
            }
        }
    });
    sink
}

async fn run(cli: Cli) -> Result<String, Error> {
    match cli {
        Cli::Backup { instance: places, to } => {
            let backup = instance(&places)?.plan(BackupOption::AllData)?;
            let repo = BackupRepository::open(&to)?;
            Ok(backup.run(repo, progress()).await?.to_string())
        }
        Cli::Restore { instance: p, from } => {
            let latest = BackupRepository::open(&from)?.open_latest().await?;
            let restore = instance(&p)?.restore(latest, &RestoreOptions::new())?;
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
