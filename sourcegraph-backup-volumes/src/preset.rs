//! Where the volumes of a standard deployment are found on the machine (or in
//! the pod) that runs the backup. The volume names, contents and recreatable
//! flags come from the core catalog; this only maps names to directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sourcegraph_backup_core::catalog::{self, Deployment, DeploymentVolume};

use crate::error::VolumeError;
use crate::store::VolumeStore;

/// Docker's default volumes directory on Linux.
pub const DOCKER_VOLUMES_ROOT: &str = "/var/lib/docker/volumes";

/// The Docker Compose project name of the standard deployment; Docker names
/// its volumes `<project>_<volume>`.
pub const COMPOSE_PROJECT: &str = "docker-compose";

/// Maps volume names to directories for one deployment kind.
///
/// - Docker Compose: `<volumes_root>/docker-compose_<name>/_data`.
/// - Kubernetes: each PVC mounted into the pod that runs the backup at
///   `<mount_root>/<pvc-name>` (e.g. `/mnt/volumes/repos-gitserver-0`).
///
/// Any name can be pointed elsewhere with [`VolumePreset::with_override`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePreset {
    deployment: Deployment,
    root: PathBuf,
    overrides: BTreeMap<String, PathBuf>,
}

impl VolumePreset {
    /// The standard Docker Compose deployment, volumes under `volumes_root`
    /// (usually [`DOCKER_VOLUMES_ROOT`]).
    pub fn docker_compose(volumes_root: impl Into<PathBuf>) -> Self {
        VolumePreset {
            deployment: Deployment::DockerCompose,
            root: volumes_root.into(),
            overrides: BTreeMap::new(),
        }
    }

    /// The standard Kubernetes deployment, each PVC mounted at `<mount_root>/<name>`.
    pub fn kubernetes(mount_root: impl Into<PathBuf>) -> Self {
        VolumePreset {
            deployment: Deployment::Kubernetes,
            root: mount_root.into(),
            overrides: BTreeMap::new(),
        }
    }

    /// Points volume `name` at `path`, whatever the preset says.
    pub fn with_override(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.overrides.insert(name.into(), path.into());
        self
    }

    /// Adds an override written `name=path` (as given on a command line).
    pub fn with_override_spec(self, spec: &str) -> Result<Self, VolumeError> {
        let bad = |reason: &str| VolumeError::Mapping {
            spec: spec.into(),
            reason: reason.into(),
        };
        let (name, path) = spec.split_once('=').ok_or_else(|| bad("expected name=path"))?;
        let name = name.trim();
        if name.is_empty() || name.contains('/') || path.is_empty() {
            return Err(bad(
                "the name must be non-empty without '/', and the path non-empty",
            ));
        }
        Ok(self.with_override(name, path))
    }

    /// The deployment kind.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// The standard volumes of this deployment (from the core catalog).
    pub fn standard_volumes(&self) -> &'static [DeploymentVolume] {
        self.deployment.volumes()
    }

    /// The directory volume `name` is found at.
    pub fn path_for(&self, name: &str) -> PathBuf {
        if let Some(p) = self.overrides.get(name) {
            return p.clone();
        }
        match self.deployment {
            Deployment::DockerCompose => self.root.join(format!("{COMPOSE_PROJECT}_{name}")).join("_data"),
            Deployment::Kubernetes => self.root.join(name),
        }
    }

    /// A store for volume `name`: a standard volume, a further shard of one
    /// (`gitserver-1`, `repos-gitserver-2`), or any overridden name.
    pub fn store(&self, name: &str) -> Result<VolumeStore, VolumeError> {
        if catalog::volume_for_name(self.deployment, name).is_none() && !self.overrides.contains_key(name) {
            return Err(VolumeError::Mapping {
                spec: name.into(),
                reason: format!(
                    "not a volume of the standard {:?} deployment; give its path with name=path",
                    self.deployment
                ),
            });
        }
        Ok(VolumeStore::new(name, self.path_for(name)).with_deployment(self.deployment))
    }

    /// Stores for every standard volume and override whose directory exists,
    /// plus further shards found next to them (`gitserver-1`, ... for Compose;
    /// `repos-gitserver-1`, ... for Kubernetes).
    pub fn discover(&self) -> Vec<VolumeStore> {
        let mut names: Vec<String> = self
            .standard_volumes()
            .iter()
            .map(|v| v.name.to_string())
            .chain(self.overrides.keys().cloned())
            .collect();
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                let name = match self.deployment {
                    Deployment::DockerCompose => file
                        .strip_prefix(&format!("{COMPOSE_PROJECT}_"))
                        .map(str::to_string),
                    Deployment::Kubernetes => Some(file),
                };
                if let Some(name) = name {
                    if catalog::volume_for_name(self.deployment, &name).is_some() {
                        names.push(name);
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter(|n| is_dir(&self.path_for(n)))
            .filter_map(|n| self.store(&n).ok())
            .collect()
    }
}

fn is_dir(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sourcegraph_backup_core::DataStore;

    #[test]
    fn compose_and_kubernetes_paths() {
        let c = VolumePreset::docker_compose(DOCKER_VOLUMES_ROOT);
        assert_eq!(
            c.path_for("gitserver-0"),
            PathBuf::from("/var/lib/docker/volumes/docker-compose_gitserver-0/_data")
        );
        assert!(c.store("gitserver-3").is_ok());
        assert!(c.store("nonsense").is_err());
        let k = VolumePreset::kubernetes("/mnt/volumes")
            .with_override_spec("pgsql=/srv/pg")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            k.path_for("repos-gitserver-0"),
            PathBuf::from("/mnt/volumes/repos-gitserver-0")
        );
        assert_eq!(k.path_for("pgsql"), PathBuf::from("/srv/pg"));
        assert!(k.clone().with_override_spec("nopath").is_err());
    }

    #[test]
    fn discover_finds_standard_volumes_and_shards() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for name in ["gitserver-0", "gitserver-1", "pgsql", "unrelated"] {
            let dir = tmp.path().join(format!("docker-compose_{name}/_data"));
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        }
        let preset = VolumePreset::docker_compose(tmp.path());
        let found: Vec<String> = preset.discover().iter().map(|s| s.id().to_string()).collect();
        assert_eq!(found, vec!["gitserver-0", "gitserver-1", "pgsql"]);
        let shard = preset.store("gitserver-1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shard.volume().map(|v| v.name), Some("gitserver-0"));
    }
}
