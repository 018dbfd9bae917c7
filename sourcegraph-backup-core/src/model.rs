//! The vocabulary every crate shares, and nothing else: the kinds of store, the three
//! databases and their store ids, the backup options. A leaf module: it imports nothing from
//! the rest of the crate, so the catalog, planner, manifest, repository and traits all build
//! on it without importing each other.

use serde::{Deserialize, Serialize};

/// The store id of the configuration store.
pub const CONFIG_STORE: &str = "config";

/// The kind of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StoreKind {
    /// The configuration JSON documents.
    Config,
    /// A PostgreSQL database.
    Postgres,
    /// A persistent volume (a directory).
    Volume,
}

impl StoreKind {
    /// The restore phase of this kind: databases, then configuration (so its
    /// revisions land on top of the restored tables), then volumes.
    pub fn restore_phase(self) -> u8 {
        match self {
            StoreKind::Postgres => 0,
            StoreKind::Config => 1,
            StoreKind::Volume => 2,
        }
    }
}

/// One of Sourcegraph's three databases: the one name for them in every crate (store ids,
/// catalog carriers, environment variables, schema detection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Database {
    /// The frontend database (`pgsql`): users, repos, settings, site config. Not recreatable.
    Frontend,
    /// The code-intelligence database (`codeintel-db`).
    CodeIntel,
    /// The code-insights database (`codeinsights-db`).
    CodeInsights,
}

impl Database {
    /// All three, frontend first.
    pub const ALL: [Database; 3] = [Database::Frontend, Database::CodeIntel, Database::CodeInsights];

    /// The store id: `pgsql`, `codeintel-db` or `codeinsights-db`.
    pub const fn store_id(self) -> &'static str {
        match self {
            Database::Frontend => "pgsql",
            Database::CodeIntel => "codeintel-db",
            Database::CodeInsights => "codeinsights-db",
        }
    }

    /// The database a store id names.
    pub fn from_store_id(id: &str) -> Option<Database> {
        Database::ALL.into_iter().find(|d| d.store_id() == id)
    }

    /// Prefix of the environment variables Sourcegraph's services read for it (`""` for
    /// `PGHOST`..., `"CODEINTEL_"`, `"CODEINSIGHTS_"`).
    pub fn env_prefix(self) -> &'static str {
        match self {
            Database::Frontend => "",
            Database::CodeIntel => "CODEINTEL_",
            Database::CodeInsights => "CODEINSIGHTS_",
        }
    }

    /// The database name of the default deployment manifests (`sg`, `sg`, `postgres`).
    pub fn default_database(self) -> &'static str {
        match self {
            Database::Frontend | Database::CodeIntel => "sg",
            Database::CodeInsights => "postgres",
        }
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.store_id())
    }
}

/// The three backup options a user chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupOption {
    /// Option 1: site configuration, code host connections, global settings.
    ConfigOnly,
    /// Option 2: the three PostgreSQL databases (and the configuration in them).
    AllPostgres,
    /// Option 3: every persistent volume of the deployment.
    AllData,
}

impl BackupOption {
    /// The option's name as users see it.
    pub fn label(self) -> &'static str {
        match self {
            BackupOption::ConfigOnly => "configuration only",
            BackupOption::AllPostgres => "all Postgres data",
            BackupOption::AllData => "all data",
        }
    }
}

impl std::fmt::Display for BackupOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The id of a row of the [catalog](crate::catalog) (`site-configuration`, `access-tokens`,
/// ...) or of a deployment volume a store carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CatalogId(pub String);

impl CatalogId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CatalogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for CatalogId {
    fn from(s: &str) -> Self {
        CatalogId(s.to_string())
    }
}

impl From<String> for CatalogId {
    fn from(s: String) -> Self {
        CatalogId(s)
    }
}
