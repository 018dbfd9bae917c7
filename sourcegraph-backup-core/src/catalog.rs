//! The catalog: what a Sourcegraph instance keeps, where, and whether a new
//! instance can rebuild it without a backup.
//!
//! Every row of the project's data-store table (`shared/mission/data-stores.md`)
//! is carried here as typed data, together with the persistent volumes of the
//! standard Kubernetes and Docker Compose deployments. The [`mod@crate::plan`]
//! module turns these facts into a backup plan.

use crate::model::Database;
use serde::{Deserialize, Serialize};

/// Which section of the data-store table a catalog row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataClass {
    /// Configuration JSON kept in the main database (site config, code hosts, global settings).
    ConfigurationJson,
    /// Data held in the main PostgreSQL database (`pgsql`).
    MainDatabase,
    /// Data kept on disk by a service (git data, search indexes, ...).
    DataOnDisk,
    /// Ephemeral data (Redis).
    Ephemeral,
}

/// Whether a new instance can rebuild an item without a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "answer", content = "condition")]
pub enum Recreatable {
    /// The new instance rebuilds it by itself.
    Yes,
    /// Lost for good without a backup.
    No,
    /// Recreatable only under the stated condition.
    Partly(&'static str),
}

impl Recreatable {
    /// `true` only for an unconditional "yes".
    pub fn is_yes(self) -> bool {
        matches!(self, Recreatable::Yes)
    }

    /// The answer as the data-store table words it: `yes`, `no` or `partly`.
    pub fn answer(self) -> &'static str {
        match self {
            Recreatable::Yes => "yes",
            Recreatable::No => "no",
            Recreatable::Partly(_) => "partly",
        }
    }
}

/// The backup unit that carries a catalog row's data when it is included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Carrier {
    /// The configuration store (the three JSONC documents).
    Configuration,
    /// The logical dump of one of the three databases.
    Database(Database),
    /// A persistent volume archive (the deployment decides which volumes).
    Volume,
}

/// One row of the data-store table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// Stable identifier, e.g. `site-configuration`.
    pub id: &'static str,
    /// The item as the table names it.
    pub item: &'static str,
    /// Which section of the table the row belongs to.
    pub class: DataClass,
    /// Whether a new instance can rebuild it.
    pub recreatable: Recreatable,
    /// The table's note, empty when it has none.
    pub note: &'static str,
    /// Which backup unit carries it.
    pub carrier: Carrier,
}

/// Every row of the data-store table, in the table's order.
pub const CATALOG: &[CatalogEntry] = &[
    // Configuration JSON.
    entry("site-configuration", "Site configuration", DataClass::ConfigurationJson, Recreatable::No,
        "defines how the product works; the most essential item", Carrier::Configuration),
    entry("code-host-connections", "Code host connection configuration(s)", DataClass::ConfigurationJson, Recreatable::No,
        "one short JSONC document per connection to a code host", Carrier::Configuration),
    entry("global-settings", "Global settings", DataClass::ConfigurationJson, Recreatable::No,
        "defaults set by administrators for all users", Carrier::Configuration),
    // Main database.
    entry("repository-metadata", "Repository metadata (clone URLs, fork/archive flags, ...)", DataClass::MainDatabase,
        Recreatable::Yes, "", Carrier::Database(Database::Frontend)),
    entry("user-accounts", "User accounts", DataClass::MainDatabase,
        Recreatable::Partly("yes with SSO authentication, no with built-in authentication"),
        "yes with SSO authentication, no with built-in authentication", Carrier::Database(Database::Frontend)),
    entry("private-extensions", "Private Sourcegraph extensions", DataClass::MainDatabase,
        Recreatable::Yes, "only with a private extension registry; keep the extension code backed up", Carrier::Database(Database::Frontend)),
    entry("repository-permissions", "Repository permissions", DataClass::MainDatabase, Recreatable::Yes, "", Carrier::Database(Database::Frontend)),
    entry("organizations", "Organizations", DataClass::MainDatabase, Recreatable::No, "", Carrier::Database(Database::Frontend)),
    entry("user-and-org-settings", "User and org settings", DataClass::MainDatabase, Recreatable::No,
        "global settings travel with the configuration JSON; user and org settings only with the database", Carrier::Database(Database::Frontend)),
    entry("saved-searches", "Saved searches", DataClass::MainDatabase, Recreatable::No, "", Carrier::Database(Database::Frontend)),
    entry("access-tokens", "User-generated access tokens", DataClass::MainDatabase, Recreatable::No, "", Carrier::Database(Database::Frontend)),
    entry("batch-changes", "Batch Changes", DataClass::MainDatabase, Recreatable::No, "", Carrier::Database(Database::Frontend)),
    entry("code-graph-metadata", "Code graph metadata", DataClass::MainDatabase,
        Recreatable::Partly("only by re-running indexing and uploads for the affected repositories and revisions; not by default"),
        "only by re-running indexing and uploads for the affected repositories and revisions; not by default", Carrier::Database(Database::Frontend)),
    entry("user-survey-responses", "User survey responses", DataClass::MainDatabase, Recreatable::No, "", Carrier::Database(Database::Frontend)),
    entry("usage-statistics", "Usage statistics and event logs", DataClass::MainDatabase, Recreatable::No,
        "used by admins for audit; not needed for Sourcegraph to work", Carrier::Database(Database::Frontend)),
    // Data on disk.
    entry("repository-git-data", "Repository (git) data", DataClass::DataOnDisk, Recreatable::Yes, "", Carrier::Volume),
    entry("search-indexes", "Search indexes", DataClass::DataOnDisk, Recreatable::Yes, "", Carrier::Volume),
    entry("code-graph-data", "Code graph data", DataClass::DataOnDisk, Recreatable::No,
        "regenerated only by re-running indexing and uploads; not by default", Carrier::Database(Database::CodeIntel)),
    entry("prometheus-metrics", "Prometheus metrics", DataClass::DataOnDisk, Recreatable::No, "", Carrier::Volume),
    entry("minio", "MinIO", DataClass::DataOnDisk, Recreatable::Yes, "holds unprocessed uploads", Carrier::Volume),
    // Ephemeral.
    entry("redis", "Session data and some usage statistics (Redis)", DataClass::Ephemeral, Recreatable::Yes,
        "all recreatable", Carrier::Volume),
];

#[allow(clippy::too_many_arguments)]
const fn entry(
    id: &'static str,
    item: &'static str,
    class: DataClass,
    recreatable: Recreatable,
    note: &'static str,
    carrier: Carrier,
) -> CatalogEntry {
    CatalogEntry {
        id,
        item,
        class,
        recreatable,
        note,
        carrier,
    }
}

/// Looks a catalog row up by its identifier.
pub fn catalog_entry(id: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.id == id)
}

/// How a Sourcegraph instance is deployed; decides which volumes exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deployment {
    /// The standard Kubernetes deployment (kustomize or Helm).
    Kubernetes,
    /// The standard Docker Compose deployment.
    DockerCompose,
}

impl std::str::FromStr for Deployment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kubernetes" | "k8s" | "helm" | "kustomize" => Ok(Deployment::Kubernetes),
            "compose" | "docker-compose" | "docker" => Ok(Deployment::DockerCompose),
            other => Err(format!(
                "unknown deployment {other:?}: expected compose or kubernetes"
            )),
        }
    }
}

/// What a persistent volume holds, which decides how the planner treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeContent {
    /// A PostgreSQL data directory: copied only when the database is stopped.
    PostgresData(Carrier),
    /// Git repositories (gitserver).
    GitRepositories,
    /// Zoekt search indexes.
    SearchIndex,
    /// Grafana state.
    Grafana,
    /// MinIO / blobstore objects.
    ObjectStore,
    /// Prometheus TSDB.
    Prometheus,
    /// A Redis data directory (RDB snapshot and AOF).
    Redis,
    /// Caddy state (ACME certificates).
    Caddy,
    /// Caches the compose file itself calls non-persistent.
    Cache,
}

/// One persistent volume of a standard deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeploymentVolume {
    /// The volume (Compose) or PVC/volume (Kubernetes) name.
    pub name: &'static str,
    /// What it holds.
    pub content: VolumeContent,
    /// The recreatable answer the deployment's own volume table gives.
    pub recreatable: bool,
    /// The note of the deployment's volume table, or of the compose file.
    pub note: &'static str,
    /// The catalog rows (data-store table) that describe its data.
    pub catalog: &'static [&'static str],
    /// Where the service mounts it inside its container.
    pub mount_path: &'static str,
}

const fn vol(
    name: &'static str,
    content: VolumeContent,
    recreatable: bool,
    note: &'static str,
    catalog: &'static [&'static str],
    mount_path: &'static str,
) -> DeploymentVolume {
    DeploymentVolume {
        name,
        content,
        recreatable,
        note,
        catalog,
        mount_path,
    }
}

/// The Kubernetes persistent volumes, as the data-store table lists them.
pub const KUBERNETES_VOLUMES: &[DeploymentVolume] = &[
    vol(
        "codeinsight-db",
        VolumeContent::PostgresData(Carrier::Database(Database::CodeInsights)),
        true,
        "",
        &[],
        "/var/lib/postgresql/data/",
    ),
    vol(
        "codeintel-db",
        VolumeContent::PostgresData(Carrier::Database(Database::CodeIntel)),
        true,
        "recreatable, but worth migrating: regenerating it takes a long time",
        &["code-graph-data"],
        "/data",
    ),
    vol(
        "indexed-search",
        VolumeContent::SearchIndex,
        true,
        "",
        &["search-indexes"],
        "/data",
    ),
    vol(
        "gitserver",
        VolumeContent::GitRepositories,
        true,
        "",
        &["repository-git-data"],
        "/data/repos",
    ),
    vol(
        "grafana",
        VolumeContent::Grafana,
        true,
        "",
        &[],
        "/var/lib/grafana",
    ),
    vol("minio", VolumeContent::ObjectStore, true, "", &["minio"], "/data"),
    vol(
        "pgsql",
        VolumeContent::PostgresData(Carrier::Database(Database::Frontend)),
        false,
        "the main database: most of the state lives here",
        &[],
        "/data",
    ),
    vol(
        "prometheus",
        VolumeContent::Prometheus,
        true,
        "",
        &["prometheus-metrics"],
        "/prometheus",
    ),
    vol(
        "redis-cache",
        VolumeContent::Redis,
        true,
        "",
        &["redis"],
        "/redis-data",
    ),
    vol(
        "redis-store",
        VolumeContent::Redis,
        true,
        "",
        &["redis"],
        "/redis-data",
    ),
];

/// The named volumes of the standard Docker Compose deployment (Docker prefixes
/// them with the project name, `docker-compose_`).
pub const COMPOSE_VOLUMES: &[DeploymentVolume] = &[
    vol(
        "pgsql",
        VolumeContent::PostgresData(Carrier::Database(Database::Frontend)),
        false,
        "the main database: most of the state lives here",
        &[],
        "/data/",
    ),
    vol(
        "codeintel-db",
        VolumeContent::PostgresData(Carrier::Database(Database::CodeIntel)),
        true,
        "recreatable, but worth migrating: regenerating it takes a long time",
        &["code-graph-data"],
        "/data/",
    ),
    vol(
        "codeinsights-db",
        VolumeContent::PostgresData(Carrier::Database(Database::CodeInsights)),
        true,
        "",
        &[],
        "/var/lib/postgresql/data/",
    ),
    vol(
        "gitserver-0",
        VolumeContent::GitRepositories,
        true,
        "",
        &["repository-git-data"],
        "/data/repos",
    ),
    vol(
        "zoekt-0-shared",
        VolumeContent::SearchIndex,
        true,
        "",
        &["search-indexes"],
        "/data/index",
    ),
    vol(
        "blobstore",
        VolumeContent::ObjectStore,
        true,
        "holds unprocessed uploads (named minio up to 4.2)",
        &["minio"],
        "/data",
    ),
    vol(
        "redis-cache",
        VolumeContent::Redis,
        true,
        "",
        &["redis"],
        "/redis-data",
    ),
    vol(
        "redis-store",
        VolumeContent::Redis,
        true,
        "",
        &["redis"],
        "/redis-data",
    ),
    vol(
        "prometheus-v2",
        VolumeContent::Prometheus,
        true,
        "",
        &["prometheus-metrics"],
        "/prometheus",
    ),
    vol(
        "grafana",
        VolumeContent::Grafana,
        true,
        "",
        &[],
        "/var/lib/grafana",
    ),
    vol(
        "caddy",
        VolumeContent::Caddy,
        true,
        "Caddy data (ACME certificates); reissued on start",
        &[],
        "/caddy-storage",
    ),
    vol(
        "sourcegraph-frontend-0",
        VolumeContent::Cache,
        true,
        "cache (the compose file calls it non-persistent)",
        &[],
        "/mnt/cache",
    ),
    vol(
        "sourcegraph-frontend-internal-0",
        VolumeContent::Cache,
        true,
        "cache (the compose file calls it non-persistent)",
        &[],
        "/mnt/cache",
    ),
    vol(
        "searcher-0",
        VolumeContent::Cache,
        true,
        "cache (the compose file calls it non-persistent)",
        &[],
        "/mnt/cache",
    ),
    vol(
        "worker",
        VolumeContent::Cache,
        true,
        "cache (the compose file calls it non-persistent)",
        &[],
        "/mnt/cache",
    ),
];

impl Deployment {
    /// The persistent volumes of this deployment kind.
    pub fn volumes(self) -> &'static [DeploymentVolume] {
        match self {
            Deployment::Kubernetes => KUBERNETES_VOLUMES,
            Deployment::DockerCompose => COMPOSE_VOLUMES,
        }
    }

    /// Looks a volume of this deployment up by name.
    pub fn volume(self, name: &str) -> Option<&'static DeploymentVolume> {
        self.volumes().iter().find(|v| v.name == name)
    }
}

/// Finds the deployment volume describing `name` (e.g. `gitserver-1` is a
/// further gitserver shard, `repos-gitserver-2` its Kubernetes PVC name).
pub fn volume_for_name(deployment: Deployment, name: &str) -> Option<&'static DeploymentVolume> {
    if let Some(v) = deployment.volume(name) {
        return Some(v);
    }
    let shard_of = |base: &str| {
        name.strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty())
    };
    deployment.volumes().iter().find(|v| {
        let base = v.name.trim_end_matches("-0").trim_end_matches("-0-shared");
        shard_of(base)
            || (base.starts_with("zoekt") && name.starts_with("zoekt-") && name.ends_with("-shared"))
            || (v.content == VolumeContent::GitRepositories && name.starts_with("repos-gitserver-"))
            || (v.content == VolumeContent::SearchIndex && name.starts_with("data-indexed-search-"))
            || (v.content == VolumeContent::Grafana && name.starts_with("grafana-data-grafana-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = CATALOG.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CATALOG.len());
    }

    #[test]
    fn shard_names_resolve() {
        let d = Deployment::DockerCompose;
        assert_eq!(
            volume_for_name(d, "gitserver-3").map(|v| v.name),
            Some("gitserver-0")
        );
        assert_eq!(
            volume_for_name(d, "zoekt-2-shared").map(|v| v.name),
            Some("zoekt-0-shared")
        );
        let k = Deployment::Kubernetes;
        assert_eq!(
            volume_for_name(k, "repos-gitserver-1").map(|v| v.name),
            Some("gitserver")
        );
        assert_eq!(
            volume_for_name(k, "gitserver-1").map(|v| v.name),
            Some("gitserver")
        );
        assert!(volume_for_name(k, "nonsense").is_none());
    }
}
