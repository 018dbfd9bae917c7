//! Planning and running a backup of an [`Instance`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use futures::future::join_all;

use super::error::check_failed;
use super::stores::{self, StoreHandle, Tuning};
use super::{DeploymentError, Instance, PlanProblem};
use crate::core::catalog::volume_for_name;
use crate::core::model::{Database, CONFIG_STORE};
use crate::core::pipeline::BackupPipeline;
use crate::core::plan::{plan, PlannedStore, VolumeMethod};
use crate::core::{
    BackupOption, BackupRepository, DataStore, Decision, Deployment, Plan, PlanRequest, ProgressSink,
    StoreKind,
};
use crate::report::{PlanReport, Summary};
use crate::volumes::{VolumePreset, DOCKER_VOLUMES_ROOT};

/// A backup plan of an [`Instance`] with the store of everything it includes: ready to be
/// checked ([`preflight`](Self::preflight)) and run ([`run`](Self::run),
/// [`run_until`](Self::run_until)).
#[derive(Debug, Clone)]
pub struct PlannedBackup {
    plan: Plan,
    stores: Vec<StoreHandle>,
    jobs: usize,
}

/// A plan, the stores it includes, and what stops it from running.
struct Resolved {
    plan: Plan,
    stores: Vec<StoreHandle>,
    problems: Vec<PlanProblem>,
}

impl Instance {
    /// Plans a backup with `option`: from the catalog, what is included and skipped, and
    /// why. A database without a connection and configuration without a source are left out
    /// with that reason, except what is not recreatable (the main database; the
    /// configuration while the main database is backed up); those, volumes without a
    /// directory and volumes the deployment does not have are refused
    /// ([`DeploymentError::Plan`], every problem at once). Nothing is connected to.
    pub fn plan(&self, option: BackupOption) -> Result<PlannedBackup, DeploymentError> {
        let resolved = self.resolve(option);
        if !resolved.problems.is_empty() {
            return Err(DeploymentError::Plan {
                problems: resolved.problems,
            });
        }
        Ok(PlannedBackup {
            plan: resolved.plan,
            stores: resolved.stores,
            jobs: self.jobs,
        })
    }

    /// What [`plan`](Self::plan) decides, as a report, including what would stop the backup
    /// (its `problems`). Touches nothing: no connection is made, no file is read (a
    /// volume's preset directory is only looked up).
    pub fn describe(&self, option: BackupOption) -> PlanReport {
        let resolved = self.resolve(option);
        let locations: BTreeMap<String, String> = resolved
            .stores
            .iter()
            .map(|s| (s.id().to_string(), s.location()))
            .collect();
        PlanReport::new(
            &resolved.plan,
            &|id| locations.get(id).cloned(),
            resolved.problems,
        )
    }

    fn tuning(&self, option: BackupOption) -> Tuning {
        Tuning {
            jobs: self.jobs,
            allow_generic: self.allow_generic,
            // The database dumps carry the same ciphertext: so may the configuration store.
            carry_encrypted: self.carry_encrypted || option != BackupOption::ConfigOnly,
            ..Tuning::default()
        }
    }

    fn resolve(&self, option: BackupOption) -> Resolved {
        let tuning = self.tuning(option);
        let mut request = PlanRequest::new(option, self.deployment);
        request.external = self.external.iter().cloned().collect();
        request.skip_recreatable = self.skip_recreatable;
        request.databases_stopped = self.databases_stopped;
        for db in Database::ALL {
            if !self.databases.contains_key(&db) {
                request.not_given.insert(db.store_id().to_string());
            }
        }
        let config = self.config_source();
        if config.is_none() {
            request.not_given.insert(CONFIG_STORE.to_string());
        }
        let mut plan = plan(&request);
        let mut problems: Vec<PlanProblem> = plan
            .not_given()
            .map(|s| PlanProblem::NotGiven {
                store: s.id.to_string(),
            })
            .collect();
        let mut stores = Vec::new();
        for (db, conn) in &self.databases {
            if plan.includes(db.store_id()) {
                stores.push(stores::database(*db, conn.clone(), &tuning));
            }
        }
        if plan.includes(CONFIG_STORE) {
            if let Some(source) = config {
                stores.push(stores::config(source, &tuning));
            }
        }
        if option == BackupOption::AllData {
            stores.extend(self.volume_stores(&mut plan, &tuning, &mut problems));
        } else {
            for name in self.volumes.keys() {
                problems.push(PlanProblem::VolumeOutsideOption { volume: name.clone() });
            }
        }
        if plan.included_stores().next().is_none() {
            problems.push(PlanProblem::NothingToBackUp);
        }
        Resolved {
            plan,
            stores,
            problems,
        }
    }

    /// The directory of each volume the plan archives: as given, else the preset's when it
    /// exists. Further shards given by name or found beside the preset's volumes
    /// (`gitserver-1`) join the plan beside their kind's volume.
    fn volume_stores(
        &self,
        plan: &mut Plan,
        tuning: &Tuning,
        problems: &mut Vec<PlanProblem>,
    ) -> Vec<StoreHandle> {
        let root: Option<PathBuf> = self.volume_root.clone().or_else(|| {
            (self.deployment == Deployment::DockerCompose).then(|| PathBuf::from(DOCKER_VOLUMES_ROOT))
        });
        let preset = root.map(|root| match self.deployment {
            Deployment::Kubernetes => VolumePreset::kubernetes(root),
            _ => VolumePreset::docker_compose(root),
        });
        let mut out = Vec::new();
        for v in &plan.volumes {
            if v.decision != Decision::Included || v.method != VolumeMethod::Archive {
                continue;
            }
            let from_preset = preset
                .as_ref()
                .map(|p| p.path_for(&v.name))
                .filter(|p| p.is_dir());
            match self.volumes.get(&v.name).cloned().or(from_preset) {
                Some(path) => out.push(stores::volume(&v.name, &path, self.deployment, tuning)),
                None => problems.push(PlanProblem::VolumeWithoutDirectory {
                    volume: v.name.clone(),
                }),
            }
        }
        // Further shards: given by name, or found beside the preset's volumes.
        let mut shards: BTreeMap<String, PathBuf> = self.volumes.clone();
        for found in preset.iter().flat_map(VolumePreset::discover) {
            shards
                .entry(found.id().to_string())
                .or_insert_with(|| found.path().to_path_buf());
        }
        for (name, path) in &shards {
            if plan.volumes.iter().any(|v| &v.name == name) {
                continue;
            }
            let Some(kind) = volume_for_name(self.deployment, name) else {
                problems.push(PlanProblem::UnknownVolume { volume: name.clone() });
                continue;
            };
            if self.external.contains(name) {
                continue;
            }
            let Some(base) = plan
                .stores
                .iter()
                .find(|s| s.id == kind.name && s.kind == StoreKind::Volume)
                .cloned()
            else {
                continue; // its kind is skipped, and so is this shard
            };
            plan.stores.push(PlannedStore {
                id: name.clone(),
                ..base
            });
            out.push(stores::volume(name, path, self.deployment, tuning));
        }
        out
    }
}

impl PlannedBackup {
    /// The plan: every store and catalog row, included or skipped, and why.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The stores the backup reads.
    pub fn stores(&self) -> &[StoreHandle] {
        &self.stores
    }

    /// The plan as a report (what `sourcegraph-backup plan` prints).
    pub fn report(&self) -> PlanReport {
        let locations: BTreeMap<String, String> = self
            .stores
            .iter()
            .map(|s| (s.id().to_string(), s.location()))
            .collect();
        PlanReport::new(&self.plan, &|id| locations.get(id).cloned(), Vec::new())
    }

    /// Checks that every store can be reached (connects, stats), all at once and without
    /// changing anything, so that an unreachable store fails the backup before anything is
    /// written, by name. Every failure is reported.
    pub async fn preflight(&self) -> Result<(), DeploymentError> {
        let checks = self.stores.iter().map(|s| async move {
            s.exporter()
                .check_reachable()
                .await
                .map_err(|e| check_failed(s.id(), &s.location(), e))
        });
        let failures: Vec<_> = join_all(checks)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DeploymentError::Preflight { failures })
        }
    }

    /// The backup pipeline into `repo`, with every store's exporter, `jobs` stores at once.
    /// Run it yourself for full control, or use [`run`](Self::run).
    pub fn pipeline(&self, repo: BackupRepository) -> BackupPipeline {
        let mut pipeline = BackupPipeline::new(repo, self.plan.clone()).concurrency(self.jobs);
        for s in &self.stores {
            pipeline = pipeline.exporter(s.exporter());
        }
        pipeline
    }

    /// [`preflight`](Self::preflight), then the backup into `repo`, progress events into
    /// `progress`. No manifest is written unless every store succeeded, and a failed backup
    /// removes what it wrote.
    pub async fn run(
        &self,
        repo: BackupRepository,
        progress: ProgressSink,
    ) -> Result<Summary, DeploymentError> {
        self.run_until(repo, progress, std::future::pending()).await
    }

    /// [`run`](Self::run), stopped when `interrupt` completes first (a signal, a deadline):
    /// everything the backup wrote is removed and the error is
    /// [`CoreError::Interrupted`](crate::core::CoreError::Interrupted).
    pub async fn run_until(
        &self,
        repo: BackupRepository,
        progress: ProgressSink,
        interrupt: impl Future<Output = ()>,
    ) -> Result<Summary, DeploymentError> {
        self.preflight().await?;
        let location = repo.location().to_string();
        let outcome = self
            .pipeline(repo)
            .progress(progress)
            .run_until(interrupt)
            .await?;
        let locations: BTreeMap<String, String> = self
            .stores
            .iter()
            .map(|s| (s.id().to_string(), s.location()))
            .collect();
        Ok(Summary::of_backup(&location, &outcome, &locations))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::deployment::RestoreOptions;

    const DEAD: &str = "postgres://sg:secret@127.0.0.1:1/sg";

    fn problems(instance: &Instance, option: BackupOption) -> Vec<PlanProblem> {
        match instance.plan(option) {
            Err(DeploymentError::Plan { problems }) => problems,
            Err(e) => panic!("not a plan error: {e}"),
            Ok(p) => panic!("planned {:?}", p.plan().included_stores().collect::<Vec<_>>()),
        }
    }

    fn not_given(store: &str) -> PlanProblem {
        PlanProblem::NotGiven { store: store.into() }
    }

    #[test]
    fn the_main_database_and_its_configuration_must_be_given_or_external() {
        let none = Instance::docker_compose();
        assert_eq!(
            problems(&none, BackupOption::AllPostgres),
            [not_given("config"), not_given("pgsql")]
        );
        assert_eq!(problems(&none, BackupOption::ConfigOnly), [not_given("config")]);
        let external = Instance::docker_compose().external("pgsql");
        assert_eq!(
            problems(&external, BackupOption::AllPostgres),
            [PlanProblem::NothingToBackUp]
        );
        let codeintel = external.database_url(Database::CodeIntel, DEAD).unwrap();
        let planned = codeintel.plan(BackupOption::AllPostgres).unwrap();
        let ids: Vec<&str> = planned.stores().iter().map(StoreHandle::id).collect();
        assert_eq!(ids, ["codeintel-db"]);
        assert!(
            !planned.plan().includes("config"),
            "config lives in the main database"
        );
    }

    #[test]
    fn databases_without_a_connection_are_left_out_with_the_reason() {
        let instance = Instance::docker_compose()
            .database_url(Database::Frontend, DEAD)
            .unwrap();
        let planned = instance.plan(BackupOption::AllPostgres).unwrap();
        let mut ids: Vec<&str> = planned.stores().iter().map(StoreHandle::id).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["config", "pgsql"]);
        let report = planned.report();
        let row = report
            .stores
            .iter()
            .find(|r| r.store == "codeinsights-db")
            .unwrap();
        assert_eq!(row.decision, "skipped");
        assert!(row.reason.starts_with("not given"), "{}", row.reason);
        assert!(
            !format!("{instance:?}").contains("secret"),
            "Debug shows a password"
        );
    }

    #[test]
    fn volumes_need_a_directory_and_the_all_data_option() {
        let dir = tempfile::tempdir().unwrap();
        let with_volume = Instance::docker_compose()
            .database_url(Database::Frontend, DEAD)
            .unwrap()
            .volume("gitserver-0", dir.path())
            .unwrap();
        assert_eq!(
            problems(&with_volume, BackupOption::AllPostgres),
            [PlanProblem::VolumeOutsideOption {
                volume: "gitserver-0".into()
            }]
        );
        let nowhere = with_volume.clone().volumes_root(dir.path().join("none"));
        let missing = problems(&nowhere, BackupOption::AllData);
        assert!(missing.contains(&PlanProblem::VolumeWithoutDirectory {
            volume: "zoekt-0-shared".into()
        }));
        assert!(!missing.contains(&PlanProblem::VolumeWithoutDirectory {
            volume: "gitserver-0".into()
        }));
        let unknown = with_volume.volume("frobnicator-3", dir.path()).unwrap();
        assert!(
            problems(&unknown, BackupOption::AllData).contains(&PlanProblem::UnknownVolume {
                volume: "frobnicator-3".into()
            })
        );
        assert!(Instance::docker_compose().volume("a/b", dir.path()).is_err());
        assert!(Instance::docker_compose().volume_spec("no-path").is_err());
        // describe() reports the same problems and touches nothing.
        let report = nowhere.describe(BackupOption::AllData);
        assert!(!report.ok);
        assert!(!dir.path().join("none").exists());
    }

    #[test]
    fn a_role_mapped_twice_is_refused() {
        let options = RestoreOptions::new().map_role("a", "b").unwrap();
        assert!(options.clone().map_role("a", "b").is_ok());
        assert!(matches!(
            options.map_role("a", "c"),
            Err(DeploymentError::RoleMappedTwice { .. })
        ));
    }
}
