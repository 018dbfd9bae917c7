//! Restoring a backup into an [`Instance`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures::future::join_all;

use super::error::{check_failed, PartlyRestored};
use super::stores::{self, ConfigSource, StoreHandle, Tuning};
use super::{DeploymentError, Instance};
use crate::config::{ConfigError, ConfigFilePaths};
use crate::core::model::{Database, CONFIG_STORE};
use crate::core::pipeline::RestorePipeline;
use crate::core::{BackupReader, Deployment, ProgressSink, StoreError, StoreErrorKind, StoreKind};
use crate::pg::schema::RenderOptions;
use crate::report::{kind_name, Summary};
use crate::volumes::{VolumeError, VolumePreset};

/// How a restore treats its targets. Built with [`RestoreOptions::new`] and setters.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    clean: bool,
    force: bool,
    dry_run: bool,
    owners: bool,
    grants: bool,
    role_map: BTreeMap<String, String>,
}

impl RestoreOptions {
    /// Empty targets only, no owners, no grants, no role map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace what the targets hold: drop the dumped schemas of a non-empty database
    /// first, overwrite files in a non-empty volume directory and existing configuration
    /// files. Without it, non-empty targets are refused before anything is written.
    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    /// With [`clean`](Self::clean), restore even over a database that records another
    /// Sourcegraph version than the backup.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Restore no database and no volume; show what the configuration restore would change
    /// (into the configuration target, else the main database as it is now).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Give restored objects the owners they have in the source (through the role map).
    /// Default: everything restored is owned by the role the restore connects as.
    pub fn owners(mut self, owners: bool) -> Self {
        self.owners = owners;
        self
    }

    /// Restore the source's GRANTs (through the role map). Default: none.
    pub fn grants(mut self, grants: bool) -> Self {
        self.grants = grants;
        self
    }

    /// Use role `target` where the source names role `source` (policies; with
    /// [`owners`](Self::owners) and [`grants`](Self::grants) also owners and grants).
    /// Mapping one source role to two targets is refused.
    pub fn map_role(mut self, source: &str, target: &str) -> Result<Self, DeploymentError> {
        if let Some(first) = self.role_map.get(source) {
            if first != target {
                return Err(DeploymentError::RoleMappedTwice {
                    role: source.into(),
                    first: first.clone(),
                    second: target.into(),
                });
            }
        }
        self.role_map.insert(source.into(), target.into());
        Ok(self)
    }

    /// Whether this is a dry run.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    #[allow(clippy::field_reassign_with_default)] // RenderOptions may become #[non_exhaustive]
    fn render(&self) -> RenderOptions {
        let mut render = RenderOptions::default();
        render.include_owners = self.owners;
        render.include_acl = self.grants;
        render.role_map = self.role_map.clone();
        render
    }
}

/// The targets a backup restores into, ready to be checked
/// ([`check_targets`](Self::check_targets)) and run ([`run`](Self::run)).
#[derive(Debug, Clone)]
pub struct PlannedRestore {
    backup: BackupReader,
    targets: Vec<StoreHandle>,
    /// Targets that must exist before the restore: databases.
    existing: BTreeSet<String>,
    /// Volume directories and configuration files that must be empty or absent.
    empty: Vec<(String, EmptyCheck)>,
    reasons: BTreeMap<String, String>,
    config_target: Option<ConfigSource>,
    dry_run: bool,
    jobs: usize,
}

/// What must not exist before a restore (unless cleaning).
#[derive(Debug, Clone)]
enum EmptyCheck {
    Directory(PathBuf),
    Files(Vec<PathBuf>),
}

impl Instance {
    /// The targets `backup` restores into: every database of the instance the backup holds
    /// (a database given by connection that the backup lacks is refused; from the
    /// environment it is not restored), the configuration only into a configuration target
    /// that was given explicitly (the restored main database already holds it; a dry run
    /// compares with the main database as it is), and every volume given by name (or, with
    /// [`volumes_root`](Instance::volumes_root), every volume of the backup into the preset's
    /// directories). Stores of the backup without a target are not restored, with the reason.
    pub fn restore(
        &self,
        backup: BackupReader,
        options: &RestoreOptions,
    ) -> Result<PlannedRestore, DeploymentError> {
        let manifest = backup.manifest();
        let tuning = Tuning {
            jobs: self.jobs,
            allow_generic: true,
            carry_encrypted: true,
            overwrite: options.clean,
            force: options.force,
            dry_run: options.dry_run,
            render: options.render(),
        };
        let not_in_backup = |what: &'static str, store: &str| DeploymentError::NotInBackup {
            backup: manifest.backup_id.clone(),
            what,
            store: store.to_string(),
        };
        let mut planned = PlannedRestore {
            backup: backup.clone(),
            targets: Vec::new(),
            existing: BTreeSet::new(),
            empty: Vec::new(),
            reasons: BTreeMap::new(),
            config_target: None,
            dry_run: options.dry_run,
            jobs: self.jobs,
        };
        const DRY: &str = "dry run: only the configuration restore is shown";
        let mut pgsql_restored = false;
        for (db, conn) in &self.databases {
            let id = db.store_id();
            if manifest.store(id).is_some_and(|s| s.kind == StoreKind::Postgres) {
                if options.dry_run {
                    planned.reasons.insert(id.to_string(), DRY.into());
                    continue;
                }
                pgsql_restored |= *db == Database::Frontend;
                planned.existing.insert(id.to_string());
                planned.targets.push(stores::database(*db, conn.clone(), &tuning));
            } else if !self.from_env.contains(db) {
                return Err(not_in_backup("database", id));
            }
        }
        if manifest.store(CONFIG_STORE).is_some() {
            let place = if self.config.is_some() || options.dry_run {
                self.config_source()
            } else {
                None
            };
            match place {
                Some(place) => {
                    match &place {
                        ConfigSource::Database(_) => {
                            planned.existing.insert(CONFIG_STORE.to_string());
                        }
                        ConfigSource::Files(dir) if !options.clean && !options.dry_run => {
                            let p = ConfigFilePaths::in_dir(dir);
                            let files = p
                                .site_config
                                .iter()
                                .chain(&p.global_settings)
                                .chain(&p.extsvc_config)
                                .cloned()
                                .collect();
                            planned
                                .empty
                                .push((CONFIG_STORE.to_string(), EmptyCheck::Files(files)));
                        }
                        ConfigSource::Files(_) => {}
                    }
                    planned.config_target = Some(place.clone());
                    planned.targets.push(stores::config(place, &tuning));
                }
                None if pgsql_restored => {
                    planned.reasons.insert(
                        CONFIG_STORE.to_string(),
                        "the restored pgsql database already holds it; give a configuration \
                         database or files to apply it elsewhere too"
                            .into(),
                    );
                }
                None => {}
            }
        } else if self.config.is_some() {
            return Err(not_in_backup("configuration", CONFIG_STORE));
        }
        let deployment = manifest
            .plan
            .as_ref()
            .map_or(Deployment::DockerCompose, |p| p.request.deployment);
        let mut volumes: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (name, path) in &self.volumes {
            if manifest.store(name).is_none_or(|s| s.kind != StoreKind::Volume) {
                return Err(not_in_backup("volume", name));
            }
            volumes.insert(name.clone(), path.clone());
        }
        if let Some(root) = &self.volume_root {
            let preset = match deployment {
                Deployment::Kubernetes => VolumePreset::kubernetes(root),
                _ => VolumePreset::docker_compose(root),
            };
            for s in manifest.stores.iter().filter(|s| s.kind == StoreKind::Volume) {
                volumes
                    .entry(s.id.to_string())
                    .or_insert_with(|| preset.path_for(&s.id));
            }
        }
        for (name, path) in volumes {
            if options.dry_run {
                planned.reasons.insert(name, DRY.into());
                continue;
            }
            if !options.clean {
                planned
                    .empty
                    .push((name.clone(), EmptyCheck::Directory(path.clone())));
            }
            planned
                .targets
                .push(stores::volume(&name, &path, deployment, &tuning));
        }
        if planned.targets.is_empty() {
            return Err(DeploymentError::NothingToRestore {
                backup: manifest.backup_id.clone(),
            });
        }
        Ok(planned)
    }
}

impl PlannedRestore {
    /// The backup restored.
    pub fn backup(&self) -> &BackupReader {
        &self.backup
    }

    /// The targets, one per store restored.
    pub fn targets(&self) -> &[StoreHandle] {
        &self.targets
    }

    /// Where the configuration goes, when it is restored.
    pub fn config_target(&self) -> Option<&ConfigSource> {
        self.config_target.as_ref()
    }

    /// Stores of the backup that get no target, and why (a store absent here and from
    /// [`targets`](Self::targets) simply had none given).
    pub fn not_restored(&self) -> &BTreeMap<String, String> {
        &self.reasons
    }

    /// Checks every target before anything is written, all at once: databases (and a
    /// configuration database) can be reached; volume directories and configuration files
    /// are empty or absent unless cleaning. Every failure is reported.
    pub async fn check_targets(&self) -> Result<(), DeploymentError> {
        let reachable = self
            .targets
            .iter()
            .filter(|s| self.existing.contains(s.id()))
            .map(|s| async move {
                s.importer()
                    .check_reachable()
                    .await
                    .map_err(|e| check_failed(s.id(), &s.location(), e))
            });
        let mut failures: Vec<_> = join_all(reachable)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        for (store, check) in &self.empty {
            let location = self
                .targets
                .iter()
                .find(|t| t.id() == store)
                .map(StoreHandle::location)
                .unwrap_or_default();
            let error = match check {
                EmptyCheck::Directory(dir) => {
                    let not_empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
                    not_empty.then(|| {
                        StoreError::new(
                            StoreErrorKind::TargetNotEmpty,
                            VolumeError::TargetNotEmpty {
                                volume: store.clone(),
                                path: dir.clone(),
                            },
                        )
                    })
                }
                EmptyCheck::Files(files) => {
                    let existing: Vec<PathBuf> = files.iter().filter(|f| f.exists()).cloned().collect();
                    (!existing.is_empty()).then(|| {
                        StoreError::new(
                            StoreErrorKind::TargetNotEmpty,
                            ConfigError::TargetExists { files: existing },
                        )
                    })
                }
            };
            if let Some(e) = error {
                failures.push(check_failed(store, &location, e));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DeploymentError::Preflight { failures })
        }
    }

    /// The restore pipeline with every target's importer: databases, then configuration,
    /// then volumes. Run it yourself for full control, or use [`run`](Self::run).
    pub fn pipeline(&self) -> RestorePipeline {
        let mut pipeline = RestorePipeline::new(self.backup.clone()).concurrency(self.jobs);
        for t in &self.targets {
            pipeline = pipeline.importer(t.importer());
        }
        pipeline
    }

    /// [`check_targets`](Self::check_targets), then the restore, progress events into
    /// `progress`. A store that fails after others were restored fails the restore with
    /// [`DeploymentError::PartlyRestored`], whose summary says what was done.
    pub async fn run(&self, progress: ProgressSink) -> Result<Summary, DeploymentError> {
        self.check_targets().await?;
        let manifest = self.backup.manifest();
        let location = self.backup.repository().location().to_string();
        let option = kind_name(&manifest.option);
        let kinds: BTreeMap<String, String> = manifest
            .stores
            .iter()
            .map(|s| (s.id.to_string(), kind_name(&s.kind)))
            .collect();
        let locations: BTreeMap<String, String> = self
            .targets
            .iter()
            .map(|s| (s.id().to_string(), s.location()))
            .collect();
        match self.pipeline().progress(progress).run_reporting().await {
            Ok(outcome) => Ok(Summary::of_restore(
                &location,
                option,
                &outcome,
                self.dry_run,
                &self.reasons,
                &locations,
                &kinds,
            )),
            Err(partial) => {
                let summary = Summary::of_partial_restore(
                    &location,
                    option,
                    &partial,
                    self.dry_run,
                    &self.reasons,
                    &locations,
                    &kinds,
                );
                let restored = partial.outcome.stores.iter().map(|(s, _, _)| s.clone()).collect();
                let failed = partial.failed.iter().map(|(s, _)| s.clone()).collect();
                let not_started = partial.not_started.clone();
                Err(DeploymentError::PartlyRestored(Box::new(PartlyRestored {
                    summary: Box::new(summary),
                    failed,
                    restored,
                    not_started,
                    source: partial.into_error(),
                })))
            }
        }
    }
}
