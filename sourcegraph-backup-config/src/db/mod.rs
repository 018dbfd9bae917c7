//! The frontend database as source and target of configuration.
//!
//! Tables read: `critical_and_site_config` (id, type, contents, created_at, updated_at,
//! author_user_id), `settings` (id, user_id, org_id, contents, created_at, author_user_id,
//! tenant_id), `external_services` (id, kind, display_name, config, created_at, updated_at,
//! deleted_at, encryption_key_id, namespace_user_id, namespace_org_id, tenant_id), each column
//! only where the schema generation has it. Written: `critical_and_site_config` (INSERT type,
//! contents, redacted_contents), `settings` (INSERT contents), `external_services` (INSERT kind,
//! display_name, config, created_at, updated_at, encryption_key_id; UPDATE config,
//! encryption_key_id, updated_at, deleted_at). Generated columns are never written.

mod apply;
mod plan;
mod read;
mod schema;

use sourcegraph_backup_pg::PgConnectionConfig;
use tokio_postgres::{Client, IsolationLevel};

pub use plan::{ChangeSummary, ImportPlan, PlanAction, PlannedChange};
pub use read::DatabaseSourceOptions;

use crate::error::ConfigError;
use crate::model::ConfigSnapshot;

/// How to import: into a database ([`ConfigImporter`], [`ConfigStore`](crate::ConfigStore)) or
/// into files ([`ConfigStore`](crate::ConfigStore) at [`ConfigLocation::Files`](crate::ConfigLocation::Files)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Soft-delete (set `deleted_at`) target connections the backup lacks. Off by default: they
    /// are left alone.
    pub remove_missing: bool,
    /// Plan only: return the plan with its diffs and write nothing.
    pub dry_run: bool,
    /// The tenant written on multi-tenant schemas (enterprise instances: 1).
    pub tenant_id: i32,
    /// Files only: replace configuration files that already exist (command line: `--clean`).
    /// Off by default: an import into files refuses, before writing anything, when any of the
    /// target files exists, naming them ([`ConfigError::TargetExists`]). A database import
    /// writes new revisions and keeps the old ones, so this does not apply to it.
    pub overwrite: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            remove_missing: false,
            dry_run: false,
            tenant_id: 1,
            overwrite: false,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// The plan (with the redacted diffs).
    pub plan: ImportPlan,
    /// Rows written (0 for a dry run or when everything was unchanged).
    pub written: usize,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Imports snapshots into a frontend database: validate, plan, then write in one transaction.
#[derive(Debug, Clone)]
pub struct ConfigImporter {
    target: PgConnectionConfig,
    options: ImportOptions,
}

impl ConfigImporter {
    /// An importer into `target`.
    pub fn new(target: PgConnectionConfig, options: ImportOptions) -> Self {
        ConfigImporter { target, options }
    }

    /// The options.
    pub fn options(&self) -> &ImportOptions {
        &self.options
    }

    /// Validates the snapshot and the target schema and plans against the target's current
    /// revisions. Writes nothing.
    pub async fn plan(&self, snapshot: &ConfigSnapshot) -> Result<ImportPlan, ConfigError> {
        let mut client = self.target.connect().await?;
        plan_import(&mut client, &self.target.endpoint(), snapshot, &self.options).await
    }

    /// Applies a plan made by [`plan`](Self::plan); fails with [`ConfigError::Conflict`], writing
    /// nothing, when the target moved since. Returns the rows written.
    pub async fn apply(&self, plan: &ImportPlan) -> Result<usize, ConfigError> {
        let mut client = self.target.connect().await?;
        apply_import(&mut client, plan, &self.options).await
    }

    /// Plans, then (unless `dry_run`) applies.
    pub async fn import(&self, snapshot: &ConfigSnapshot) -> Result<ImportOutcome, ConfigError> {
        let mut client = self.target.connect().await?;
        import_with_client(&mut client, &self.target.endpoint(), snapshot, &self.options).await
    }
}

/// [`ConfigImporter::plan`] on an open connection; `endpoint` names the database in messages.
pub async fn plan_import(
    client: &mut Client,
    endpoint: &str,
    snapshot: &ConfigSnapshot,
    options: &ImportOptions,
) -> Result<ImportPlan, ConfigError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(ConfigError::query("starting the planning transaction"))?;
    let plan = plan::plan(&tx, endpoint, snapshot, options.remove_missing, options.tenant_id).await?;
    tx.rollback()
        .await
        .map_err(ConfigError::query("ending the planning transaction"))?;
    Ok(plan)
}

/// [`ConfigImporter::apply`] on an open connection.
pub async fn apply_import(
    client: &mut Client,
    plan: &ImportPlan,
    options: &ImportOptions,
) -> Result<usize, ConfigError> {
    if options.dry_run || !plan.has_changes() {
        return Ok(0);
    }
    apply::apply(client, plan, options.tenant_id).await
}

/// [`ConfigImporter::import`] on an open connection.
pub async fn import_with_client(
    client: &mut Client,
    endpoint: &str,
    snapshot: &ConfigSnapshot,
    options: &ImportOptions,
) -> Result<ImportOutcome, ConfigError> {
    let plan = plan_import(client, endpoint, snapshot, options).await?;
    let written = apply_import(client, &plan, options).await?;
    Ok(ImportOutcome {
        plan,
        written,
        dry_run: options.dry_run,
    })
}
