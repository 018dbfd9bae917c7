//! A Sourcegraph deployment, described once: where its databases, configuration and volumes
//! are, and what lives outside it. An [`Instance`] plans a backup of it
//! ([`Instance::plan`], [`Instance::describe`]), checks that every store can be reached
//! ([`PlannedBackup::preflight`]), and runs the backup pipeline with progress and
//! interruption ([`PlannedBackup::run_until`]). For a restore it picks the targets a backup
//! can go into ([`Instance::restore`]), checks them before anything is written
//! ([`PlannedRestore::check_targets`]) and runs the restore pipeline
//! ([`PlannedRestore::run`]). Every outcome is a typed [`report`](crate::report).
//!
//! ```no_run
//! use sourcegraph_backup::core::model::Database;
//! use sourcegraph_backup::core::{BackupOption, BackupRepository, ProgressSink};
//! use sourcegraph_backup::deployment::{Instance, RestoreOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // The source: the databases Sourcegraph's services use (PG*, CODEINTEL_PG*, ...), the
//! // volumes of a Docker Compose deployment, the code insights database left out.
//! let source = Instance::docker_compose().databases_from_env()?.external("codeinsights-db");
//! let backup = source.plan(BackupOption::AllData)?; // refuses what cannot run, naming it all
//! println!("{}", backup.report()); // what is included and skipped, and why
//! let repo = BackupRepository::open("s3://backups/sourcegraph")?;
//! let summary = backup.run(repo.clone(), ProgressSink::disabled()).await?;
//! println!("{summary}");
//!
//! // The target: a new database server and new volume directories.
//! let target = Instance::docker_compose()
//!     .database_url(Database::Frontend, "postgres://sg@new-db:5432/sg")?
//!     .volume("gitserver-0", "/mnt/new/gitserver-0")?;
//! let restore = target.restore(repo.open_latest().await?, &RestoreOptions::new())?;
//! restore.check_targets().await?; // reachable, empty
//! println!("{}", restore.run(ProgressSink::disabled()).await?);
//! # Ok(()) }
//! ```

mod backup;
mod error;
mod restore;
mod stores;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::core::model::Database;
use crate::core::Deployment;
use crate::pg::PgConnectionConfig;

pub use backup::PlannedBackup;
pub use error::{DeploymentError, PartlyRestored, PlanProblem};
pub use restore::{PlannedRestore, RestoreOptions};
pub use stores::{connection_from_env, parse_connection, ConfigSource, StoreHandle};

/// A Sourcegraph deployment: its databases (by connection or from Sourcegraph's
/// environment), its configuration (in the main database or in files), its volumes (a
/// Compose or Kubernetes preset, or `name=path`) and what lives outside it.
///
/// The same description serves as the source of a backup and as the target of a restore.
/// Built with consuming setters; nothing is connected to or read until a plan is checked or
/// run. `Debug` never shows a password.
#[derive(Debug, Clone)]
pub struct Instance {
    deployment: Deployment,
    databases: BTreeMap<Database, PgConnectionConfig>,
    /// Databases read from the environment (a restore does not refuse those the backup
    /// lacks: the environment names all three).
    from_env: BTreeSet<Database>,
    config: Option<ConfigSource>,
    volume_root: Option<PathBuf>,
    volumes: BTreeMap<String, PathBuf>,
    external: BTreeSet<String>,
    skip_recreatable: bool,
    databases_stopped: bool,
    jobs: usize,
    allow_generic: bool,
    carry_encrypted: bool,
}

impl Instance {
    /// A deployment of kind `deployment`, with nothing given yet.
    pub fn new(deployment: Deployment) -> Self {
        Instance {
            deployment,
            databases: BTreeMap::new(),
            from_env: BTreeSet::new(),
            config: None,
            volume_root: None,
            volumes: BTreeMap::new(),
            external: BTreeSet::new(),
            skip_recreatable: false,
            databases_stopped: false,
            jobs: 4,
            allow_generic: false,
            carry_encrypted: false,
        }
    }

    /// The standard Docker Compose deployment. A backup finds its volumes under
    /// `/var/lib/docker/volumes` unless told otherwise ([`Instance::volumes_root`],
    /// [`Instance::volume`]).
    pub fn docker_compose() -> Self {
        Self::new(Deployment::DockerCompose)
    }

    /// The standard Kubernetes deployment (kustomize or Helm). Its volumes are found where
    /// [`Instance::volumes_root`] says each PVC is mounted, or given one by one.
    pub fn kubernetes() -> Self {
        Self::new(Deployment::Kubernetes)
    }

    /// The connection of database `db`.
    pub fn database(mut self, db: Database, connection: PgConnectionConfig) -> Self {
        self.databases.insert(db, connection);
        self.from_env.remove(&db);
        self
    }

    /// The connection of database `db`, as a `postgres://` URL or a libpq `key=value` string.
    pub fn database_url(self, db: Database, url: &str) -> Result<Self, DeploymentError> {
        let conn = parse_connection(url).map_err(|source| DeploymentError::Connection {
            what: format!("the connection of {db}"),
            source,
        })?;
        Ok(self.database(db, conn))
    }

    /// Every database not given yet, from the environment Sourcegraph's services read:
    /// `PG*` for the main database, `CODEINTEL_PG*` and `CODEINSIGHTS_PG*` for the others.
    pub fn databases_from_env(mut self) -> Result<Self, DeploymentError> {
        for db in Database::ALL {
            if self.databases.contains_key(&db) {
                continue;
            }
            let conn = connection_from_env(db).map_err(|source| DeploymentError::Connection {
                what: format!("the environment of {db}"),
                source,
            })?;
            self.databases.insert(db, conn);
            self.from_env.insert(db);
        }
        Ok(self)
    }

    /// Configuration in this database (by default it is read from, and left in, the main
    /// database).
    pub fn config_database(mut self, connection: PgConnectionConfig) -> Self {
        self.config = Some(ConfigSource::Database(Box::new(connection)));
        self
    }

    /// Configuration in files in `dir`: `site-config.json`, `global-settings.json`,
    /// `extsvc-config.json`.
    pub fn config_files(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config = Some(ConfigSource::Files(dir.into()));
        self
    }

    /// Where the deployment's volumes are: for Docker Compose, Docker's volumes directory
    /// (`<root>/docker-compose_<name>/_data`); for Kubernetes, where each PVC is mounted
    /// (`<root>/<pvc-name>`). A restore writes into these directories only when this is set.
    pub fn volumes_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.volume_root = Some(root.into());
        self
    }

    /// Volume `name` is (or, for a restore, goes) at `path`. A further shard of a volume
    /// (`gitserver-1`) joins the backup beside it.
    pub fn volume(mut self, name: &str, path: impl Into<PathBuf>) -> Result<Self, DeploymentError> {
        let name = name.trim();
        let path = path.into();
        let bad = |reason: &str| DeploymentError::VolumeSpec {
            spec: format!("{name}={}", path.display()),
            reason: reason.into(),
        };
        if name.is_empty() || path.as_os_str().is_empty() {
            return Err(bad("both the name and the path are needed"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(
                "a volume name may only hold letters, digits, '-', '_' and '.'",
            ));
        }
        self.volumes.insert(name.to_string(), path);
        Ok(self)
    }

    /// A volume written `NAME=PATH`, as a command line gives it.
    pub fn volume_spec(self, spec: &str) -> Result<Self, DeploymentError> {
        match spec.split_once('=') {
            Some((name, path)) => self.volume(name, path),
            None => Err(DeploymentError::VolumeSpec {
                spec: spec.into(),
                reason: "there is no '='".into(),
            }),
        }
    }

    /// A store that lives outside the deployment and is left out: a store id such as
    /// `codeinsights-db` or `config` (configuration loaded from files), or a volume name.
    pub fn external(mut self, name: impl Into<String>) -> Self {
        self.external.insert(name.into());
        self
    }

    /// Leave out what a new instance rebuilds by itself (repositories, search indexes,
    /// caches).
    pub fn skip_recreatable(mut self, skip: bool) -> Self {
        self.skip_recreatable = skip;
        self
    }

    /// The databases are stopped: an all-data backup archives their data directories as
    /// volumes instead of dumping them.
    pub fn databases_stopped(mut self, stopped: bool) -> Self {
        self.databases_stopped = stopped;
        self
    }

    /// How many stores (and, inside a database, tables) are processed at once (default 4).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Accept databases that are not Sourcegraph databases.
    pub fn allow_generic(mut self, allow: bool) -> Self {
        self.allow_generic = allow;
        self
    }

    /// A configuration-only backup carries code host connections encrypted at rest as
    /// ciphertext (restorable only where the same keys are configured) instead of failing.
    /// Backups with the databases always do: the dumps carry the same ciphertext.
    pub fn carry_encrypted(mut self, carry: bool) -> Self {
        self.carry_encrypted = carry;
        self
    }

    /// The deployment kind.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// The connection of database `db`, if given.
    pub fn connection(&self, db: Database) -> Option<&PgConnectionConfig> {
        self.databases.get(&db)
    }

    /// Where configuration is: as given, else the main database.
    pub fn config_source(&self) -> Option<ConfigSource> {
        self.config.clone().or_else(|| {
            self.databases
                .get(&Database::Frontend)
                .map(|c| ConfigSource::Database(Box::new(c.clone())))
        })
    }

    /// Whether configuration was given explicitly (a database or files).
    pub fn has_explicit_config(&self) -> bool {
        self.config.is_some()
    }

    /// The volumes given by name.
    pub fn volumes(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.volumes.iter().map(|(n, p)| (n.as_str(), p.as_path()))
    }

    /// What is marked external.
    pub fn externals(&self) -> impl Iterator<Item = &str> {
        self.external.iter().map(String::as_str)
    }
}
