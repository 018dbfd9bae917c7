//! The command line (clap derive). None of these structs derives `Debug`: database URLs may
//! carry a password, and nothing here should ever be able to print one.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sourcegraph_backup::core::{BackupOption, Deployment};

use crate::progress;

/// Back up a Sourcegraph instance and migrate it to a new one.
///
/// A backup holds one of three options: the configuration only, all Postgres data (the three
/// databases and the configuration in them), or all data (also every persistent volume of the
/// deployment). `plan` shows what a backup would include and skip, and why, without touching
/// anything. Backups go to a local directory or object storage (s3://, gs://, az://), whose
/// credentials are read from the environment (AWS_*, GOOGLE_*, AZURE_*). Exit codes: 0 done,
/// 1 failed (or differences found, or a backup needs attention), 2 usage, 130 interrupted.
/// Logs: RUST_LOG=debug.
#[derive(Parser)]
#[command(name = "sourcegraph-backup", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Subcommand)]
pub enum Command {
    /// Back up the databases, configuration and volumes the option holds into REPO.
    Backup(BackupArgs),
    /// Restore a backup: databases, then configuration (into --config-db or --config-files
    /// when given), then volumes into empty directories.
    Restore(RestoreArgs),
    /// Re-read every artifact of a backup and check its size and SHA-256.
    Verify(VerifyArgs),
    /// List every backup under REPO, newest first: complete, in progress, abandoned
    /// (interrupted or failed, with its age) and unreadable (with the reason). Exits 1 when
    /// one needs attention (abandoned or unreadable).
    List(RepoArgs),
    /// Remove the incomplete backups under REPO that no running backup owns (interrupted
    /// or failed ones); running backups are left alone.
    Clean(RepoArgs),
    /// Show what a backup would include or skip, and why, from the catalog of what
    /// Sourcegraph keeps; connects to nothing and writes nothing. Exits 1 when the backup
    /// would be refused (the problems are listed).
    Plan(PlanArgs),
    /// Compare databases, e.g. a migrated instance with its source: schema, per-table row
    /// count and content hash, sequences. Exits 0 when identical, 1 with the differences.
    Compare(CompareArgs),
    /// Remove old complete backups under REPO by a retention policy; never the only
    /// complete backup unless told.
    Forget(ForgetArgs),
}

/// `--json`.
#[derive(Args, Clone, Copy, Default)]
pub struct Output {
    /// Print one machine-readable JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `--progress`.
#[derive(Args, Clone, Copy, Default)]
pub struct Progress {
    /// How to show progress on stderr: bars on a terminal and plain lines otherwise (auto),
    /// or one JSON event per line (json).
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    pub progress: progress::Mode,
}

/// `--jobs N`.
#[derive(Args, Clone, Copy)]
pub struct Jobs {
    /// How many stores (and, inside a database, tables) are processed at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
}

/// The backup option, as users type it.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum OptionArg {
    /// Site configuration, code host connections and global settings.
    #[value(alias = "config-only")]
    Config,
    /// The three PostgreSQL databases (and the configuration in them).
    #[value(alias = "all-postgres")]
    Postgres,
    /// The databases, the configuration and every persistent volume of the deployment.
    #[value(alias = "all-data")]
    All,
}

impl OptionArg {
    /// The library's option.
    pub fn option(self) -> BackupOption {
        match self {
            OptionArg::Config => BackupOption::ConfigOnly,
            OptionArg::Postgres => BackupOption::AllPostgres,
            OptionArg::All => BackupOption::AllData,
        }
    }
}

/// The three databases: URLs, or the environment Sourcegraph's services read.
#[derive(Args, Clone, Default)]
pub struct Databases {
    /// The main (frontend) database: postgres://USER[:PASSWORD]@HOST:PORT/DB?sslmode=... or
    /// a libpq key=value string.
    #[arg(long, value_name = "URL")]
    pub pgsql: Option<String>,
    /// The code intelligence database (a backup leaves it out when not given).
    #[arg(long, value_name = "URL")]
    pub codeintel: Option<String>,
    /// The code insights database (a backup leaves it out when not given).
    #[arg(long, value_name = "URL")]
    pub codeinsights: Option<String>,
    /// Read the databases from the environment Sourcegraph's services read: PG* (or
    /// PGDATASOURCE) for the main database, CODEINTEL_PG* and CODEINSIGHTS_PG* for the
    /// others. A URL option wins over the environment for its database.
    #[arg(long)]
    pub from_env: bool,
}

/// Where configuration comes from (backup) or goes to (restore).
#[derive(Args, Clone, Default)]
#[group(multiple = false)]
pub struct ConfigPlace {
    /// The database holding the configuration (a Sourcegraph main database). A backup reads
    /// it from --pgsql without this; a restore of the databases leaves it in the restored
    /// main database and applies it only to a --config-db or --config-files target.
    #[arg(long, value_name = "URL")]
    pub config_db: Option<String>,
    /// A directory of configuration files instead of a database: site-config.json (the
    /// site configuration), global-settings.json and extsvc-config.json (code host
    /// connections), the names Sourcegraph's SITE_CONFIG_FILE, GLOBAL_SETTINGS_FILE and
    /// EXTSVC_CONFIG_FILE conventionally use.
    #[arg(long, value_name = "DIR")]
    pub config_files: Option<PathBuf>,
}

/// `--volume NAME=PATH` and `--volumes-root DIR`.
#[derive(Args, Clone, Default)]
pub struct Volumes {
    /// A volume and its directory, e.g.
    /// gitserver-0=/var/lib/docker/volumes/docker-compose_gitserver-0/_data. Repeatable;
    /// further shards (gitserver-1) join the backup beside their kind's volume.
    #[arg(long = "volume", value_name = "NAME=PATH", value_parser = parse_volume)]
    pub volumes: Vec<(String, PathBuf)>,
    /// Where the deployment's volumes are: Docker's volumes directory for Compose
    /// (default for a backup: /var/lib/docker/volumes, where it exists), the directory
    /// each PVC is mounted under for Kubernetes. A restore writes every volume of the
    /// backup under it only when given.
    #[arg(long, value_name = "DIR")]
    pub volumes_root: Option<PathBuf>,
}

/// What a backup reads: `backup` and `plan`.
#[derive(Args, Clone)]
pub struct Source {
    #[command(flatten)]
    pub databases: Databases,
    #[command(flatten)]
    pub config: ConfigPlace,
    #[command(flatten)]
    pub volumes: Volumes,
    /// How Sourcegraph is deployed; decides which volumes exist. Also read from
    /// DEPLOY_TYPE, Sourcegraph's own variable (docker-compose, kubernetes, helm, kustomize).
    #[arg(long, value_name = "KIND", default_value = "compose", env = "DEPLOY_TYPE",
          value_parser = parse_deployment)]
    pub deployment: Deployment,
    /// A store that lives outside the deployment and is left out: a store id (pgsql,
    /// codeintel-db, codeinsights-db, config) or a volume name. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub external: Vec<String>,
    /// Leave out what a new instance rebuilds by itself (repositories, search indexes,
    /// caches).
    #[arg(long)]
    pub skip_recreatable: bool,
    /// State that the databases are stopped: an all-data backup archives their data
    /// directories as volumes instead of dumping them.
    #[arg(long)]
    pub databases_stopped: bool,
    /// Accept databases that are not Sourcegraph databases (no Sourcegraph schema found).
    #[arg(long)]
    pub allow_generic: bool,
    /// A configuration-only backup carries code host connections encrypted at rest as
    /// ciphertext (restorable only into an instance with the same encryption keys) instead
    /// of failing. Backups with the databases always do.
    #[arg(long)]
    pub carry_encrypted: bool,
}

/// `backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// What to back up: config, postgres or all.
    #[arg(long = "option", value_enum, value_name = "OPTION")]
    pub option: OptionArg,
    /// Where to write the backup: a local path (created if missing) or a URL (file://,
    /// s3://, gs://, az://, memory://).
    #[arg(long, value_name = "REPO")]
    pub to: String,
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub jobs: Jobs,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub progress: Progress,
}

/// `plan`.
#[derive(Args)]
pub struct PlanArgs {
    /// What a backup would hold: config, postgres or all.
    #[arg(long = "option", value_enum, value_name = "OPTION")]
    pub option: OptionArg,
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub output: Output,
}

/// `--from REPO`.
#[derive(Args, Clone)]
pub struct From {
    /// Where the backups are: a local path or a URL (file://, s3://, gs://, az://, memory://).
    #[arg(long, value_name = "REPO")]
    pub from: String,
}

/// `--backup ID`.
#[derive(Args, Clone, Default)]
pub struct Pick {
    /// The backup to use (see `list`); default: the newest complete one.
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
}

/// `restore`.
#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub from: From,
    #[command(flatten)]
    pub pick: Pick,
    #[command(flatten)]
    pub databases: Databases,
    #[command(flatten)]
    pub config: ConfigPlace,
    #[command(flatten)]
    pub volumes: Volumes,
    /// Replace what the targets hold: drop the dumped schemas of a non-empty database
    /// first, overwrite files in a non-empty volume directory and existing files in a
    /// --config-files directory. Without it, non-empty targets are refused before anything
    /// is written.
    #[arg(long)]
    pub clean: bool,
    /// With --clean, restore even over a database that records another Sourcegraph
    /// version than the backup.
    #[arg(long, requires = "clean")]
    pub force: bool,
    /// Show what the configuration restore would change, and change nothing: no database
    /// or volume is restored; the configuration is compared with --config-db,
    /// --config-files or, without them, the --pgsql database as it is now.
    #[arg(long)]
    pub dry_run: bool,
    /// Use role TARGET of the restored databases where the source names role SOURCE (in
    /// policies, and with --owners and --grants in owners and grants). Repeatable. A restore
    /// that needs a role the target lacks is refused before anything is written, naming it.
    #[arg(long = "role-map", value_name = "SOURCE=TARGET", value_parser = parse_role_map)]
    pub role_map: Vec<(String, String)>,
    /// Give restored objects the owners they have in the source (through --role-map).
    /// Default: everything restored is owned by the role the restore connects as.
    #[arg(long)]
    pub owners: bool,
    /// Restore the source's GRANTs (through --role-map). Default: none; the role the restore
    /// connects as owns everything and needs none.
    #[arg(long)]
    pub grants: bool,
    #[command(flatten)]
    pub jobs: Jobs,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub progress: Progress,
}

/// `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub from: From,
    #[command(flatten)]
    pub pick: Pick,
    #[command(flatten)]
    pub output: Output,
}

/// `list` and `clean`.
#[derive(Args)]
pub struct RepoArgs {
    #[command(flatten)]
    pub from: From,
    #[command(flatten)]
    pub output: Output,
}

/// `compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// The main database to compare (e.g. the source of a migration).
    #[arg(long, value_name = "URL")]
    pub pgsql: Option<String>,
    /// The database to compare --pgsql with (e.g. where it was restored); with only one
    /// of --pgsql, --codeintel, --codeinsights, the one given.
    #[arg(long, value_name = "URL")]
    pub with: Option<String>,
    /// A code intelligence database to compare.
    #[arg(long, value_name = "URL")]
    pub codeintel: Option<String>,
    /// The database to compare --codeintel with.
    #[arg(long, value_name = "URL")]
    pub codeintel_with: Option<String>,
    /// A code insights database to compare.
    #[arg(long, value_name = "URL")]
    pub codeinsights: Option<String>,
    /// The database to compare --codeinsights with.
    #[arg(long, value_name = "URL")]
    pub codeinsights_with: Option<String>,
    /// Compare data and sequences only, not the schema (across PostgreSQL major versions,
    /// each server deparses view and function bodies its own way).
    #[arg(long)]
    pub skip_schema: bool,
    /// Connections per database hashing tables.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    #[command(flatten)]
    pub output: Output,
}

/// `forget`.
#[derive(Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub from: From,
    /// Keep the N newest complete backups.
    #[arg(long, value_name = "N")]
    pub keep_last: u32,
    /// Keep the newest complete backup of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest complete backup of each of the last N weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest complete backup of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow removing every complete backup (with --keep-last 0 and nothing else kept);
    /// without it the only complete backup left is never removed.
    #[arg(long)]
    pub allow_removing_all: bool,
    #[command(flatten)]
    pub output: Output,
}

fn parse_deployment(s: &str) -> Result<Deployment, String> {
    s.parse()
}

fn parse_volume(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=PATH"))?;
    let name = name.trim();
    if name.is_empty() || path.is_empty() {
        return Err(format!("{s:?} is not NAME=PATH: both parts are needed"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "volume name {name:?} may only hold letters, digits, '-', '_' and '.'"
        ));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

fn parse_role_map(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((source, target)) if !source.is_empty() && !target.is_empty() => {
            Ok((source.to_string(), target.to_string()))
        }
        _ => Err(format!(
            "{s:?} is not SOURCE=TARGET (two role names, e.g. sourcegraph=sg_admin)"
        )),
    }
}
