//! Command-line arguments shared by the three programs (clap derive).
//!
//! The structs here are flattened into each program's subcommands, so the
//! three programs spell every option the same way and scripts can drive them
//! interchangeably. None of them derives `Debug`: database URLs may carry a
//! password, and nothing here should ever be able to print one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sourcegraph_backup::core::Deployment;
use sourcegraph_backup::pg::schema::RenderOptions;

/// `--to DEST`: where a backup is written.
#[derive(Args, Clone)]
pub struct To {
    /// Where to write the backup: a local path or a URL (file://, s3://, gs://, az://, memory://).
    #[arg(long, value_name = "DEST")]
    pub to: String,
}

/// `--from DEST`: where backups are read.
#[derive(Args, Clone)]
pub struct From {
    /// Where the backups are: a local path or a URL (file://, s3://, gs://, az://, memory://).
    #[arg(long, value_name = "DEST")]
    pub from: String,
}

/// `--backup ID`: which backup to use.
#[derive(Args, Clone, Default)]
pub struct Pick {
    /// The backup to use (see `list`); default: the newest complete one.
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
}

/// `--json`.
#[derive(Args, Clone, Copy, Default)]
pub struct Output {
    /// Print one machine-readable JSON summary object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `--jobs N`.
#[derive(Args, Clone, Copy)]
pub struct Jobs {
    /// How many stores (and, inside a database, tables) are processed at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
}

impl Jobs {
    /// The job count as a `usize`.
    pub fn get(self) -> usize {
        usize::from(self.jobs)
    }
}

/// The three databases: URLs, or the environment Sourcegraph's services read.
#[derive(Args, Clone, Default)]
pub struct Databases {
    /// The main (frontend) database: postgres://USER[:PASSWORD]@HOST:PORT/DB?sslmode=...
    #[arg(long, value_name = "URL")]
    pub pgsql: Option<String>,
    /// The code intelligence database (backup: left out when not given).
    #[arg(long, value_name = "URL")]
    pub codeintel: Option<String>,
    /// The code insights database (backup: left out when not given).
    #[arg(long, value_name = "URL")]
    pub codeinsights: Option<String>,
    /// Read the databases from the environment Sourcegraph uses: PG* for the main
    /// database, CODEINTEL_PG* and CODEINSIGHTS_PG* for the others. A URL option wins
    /// over the environment for its database.
    #[arg(long)]
    pub from_env: bool,
}

/// Where configuration comes from (backup) or goes to (restore).
#[derive(Args, Clone, Default)]
#[group(multiple = false)]
pub struct ConfigArgs {
    /// The main database holding the configuration: postgres://USER[:PASSWORD]@HOST:PORT/DB.
    /// A backup reads it from --pgsql without this; a restore of the databases applies it
    /// only to a --config-db or --config-files target (the restored main database holds it).
    #[arg(long, value_name = "URL")]
    pub config_db: Option<String>,
    /// A directory of configuration files instead of a database: site-config.json (the
    /// site configuration), global-settings.json and extsvc-config.json (code host
    /// connections), the names Sourcegraph's SITE_CONFIG_FILE, GLOBAL_SETTINGS_FILE and
    /// EXTSVC_CONFIG_FILE conventionally use.
    #[arg(long, value_name = "DIR")]
    pub config_files: Option<PathBuf>,
}

/// `--dry-run` for configuration restores.
#[derive(Args, Clone, Copy, Default)]
pub struct DryRun {
    /// Show what the configuration restore would change, and change nothing: no database
    /// is restored; the configuration is compared with --config-db, --config-files or, without
    /// them, the --pgsql database as it is now.
    #[arg(long)]
    pub dry_run: bool,
}

/// The deployment kind, as users type it.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentArg {
    /// Docker Compose.
    Compose,
    /// Kubernetes (kustomize or Helm).
    Kubernetes,
}

impl DeploymentArg {
    /// The core's deployment kind.
    pub fn deployment(self) -> Deployment {
        match self {
            DeploymentArg::Compose => Deployment::DockerCompose,
            DeploymentArg::Kubernetes => Deployment::Kubernetes,
        }
    }
}

/// `--volume NAME=PATH`, repeatable: where each volume is mounted (backup) or
/// goes (restore).
#[derive(Args, Clone, Default)]
pub struct Volumes {
    /// A volume and its directory, e.g. gitserver-0=/var/lib/docker/volumes/docker-compose_gitserver-0/_data.
    /// Repeat for every volume.
    #[arg(long = "volume", value_name = "NAME=PATH", value_parser = parse_volume)]
    pub volumes: Vec<(String, PathBuf)>,
}

/// `--external NAME`, repeatable.
#[derive(Args, Clone, Default)]
pub struct Externals {
    /// A store that lives outside the deployment and is left out (a store id such as
    /// codeinsights-db, or a volume name). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub external: Vec<String>,
}

/// `--allow-generic` and `--clean`: database handling.
#[derive(Args, Clone, Copy, Default)]
pub struct DbTuning {
    /// Accept databases that are not Sourcegraph databases (no Sourcegraph schema found).
    #[arg(long)]
    pub allow_generic: bool,
}

/// `--clean` and `--force`: restoring into targets that are not empty.
#[derive(Args, Clone, Copy, Default)]
pub struct Clean {
    /// Replace what the targets hold: drop the dumped schemas of a non-empty database
    /// first, overwrite files in a non-empty volume directory and existing files in a
    /// --config-files directory. Without it, non-empty targets are refused.
    #[arg(long)]
    pub clean: bool,
    /// With --clean, restore even over a database that records another Sourcegraph
    /// version than the backup.
    #[arg(long, requires = "clean")]
    pub force: bool,
}

/// `--role-map`, `--owners`, `--grants`: which roles restored database objects name.
#[derive(Args, Clone, Default)]
pub struct Roles {
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
}

impl Roles {
    /// The rendering options these flags ask for; a source role mapped to two different
    /// targets is a usage error.
    pub fn render_options(&self) -> Result<RenderOptions, String> {
        let mut role_map: BTreeMap<String, String> = BTreeMap::new();
        for (source, target) in &self.role_map {
            if let Some(earlier) = role_map.insert(source.clone(), target.clone()) {
                if &earlier != target {
                    return Err(format!(
                        "--role-map maps role {source} twice ({earlier} and {target}): give it once"
                    ));
                }
            }
        }
        Ok(RenderOptions {
            include_owners: self.owners,
            include_acl: self.grants,
            role_map,
            ..RenderOptions::default()
        })
    }
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

/// `verify`'s arguments.
#[derive(Args, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub from: From,
    #[command(flatten)]
    pub pick: Pick,
    #[command(flatten)]
    pub output: Output,
}

/// `list`'s arguments.
#[derive(Args, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub from: From,
    #[command(flatten)]
    pub output: Output,
}

/// `clean`'s arguments.
#[derive(Args, Clone)]
pub struct CleanArgs {
    #[command(flatten)]
    pub from: From,
    #[command(flatten)]
    pub output: Output,
}

/// The planner's inputs for the all-data option.
#[derive(Args, Clone)]
pub struct PlanArgs {
    /// How Sourcegraph is deployed; decides which volumes exist.
    #[arg(long, value_enum, value_name = "KIND", default_value = "compose")]
    pub deployment: DeploymentArg,
    /// Leave out what a new instance rebuilds by itself (repositories, search indexes, caches).
    #[arg(long)]
    pub skip_recreatable: bool,
    /// State that the databases are stopped: their data directories are archived as
    /// volumes instead of dumped logically.
    #[arg(long)]
    pub databases_stopped: bool,
    #[command(flatten)]
    pub externals: Externals,
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

/// `backup` of the databases (and the configuration in them).
#[derive(Args, Clone)]
pub struct PgBackupArgs {
    #[command(flatten)]
    pub to: To,
    #[command(flatten)]
    pub databases: Databases,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub tuning: DbTuning,
    #[command(flatten)]
    pub jobs: Jobs,
    #[command(flatten)]
    pub output: Output,
}

/// `restore` into databases (and the configuration on top of them).
#[derive(Args, Clone)]
pub struct PgRestoreArgs {
    #[command(flatten)]
    pub from: From,
    #[command(flatten)]
    pub pick: Pick,
    #[command(flatten)]
    pub databases: Databases,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub clean: Clean,
    #[command(flatten)]
    pub roles: Roles,
    #[command(flatten)]
    pub jobs: Jobs,
    #[command(flatten)]
    pub output: Output,
}
