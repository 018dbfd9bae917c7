//! [`PgStore`]: one PostgreSQL database as a store of a backup (`pgsql`, `codeintel-db`,
//! `codeinsights-db`, or a generic database).

use async_trait::async_trait;
use sourcegraph_backup_core::model::{CatalogId, Database};
use sourcegraph_backup_core::{
    DataStore, ExportContext, ExportReport, Exporter, ImportContext, ImportReport, Importer, StoreError,
    StoreKind,
};

use crate::connection::PgConnectionConfig;
use crate::export::PgExportOptions;
use crate::import::PgImportOptions;
use crate::sql::query_err;

/// A PostgreSQL database, exported from or imported into.
///
/// ```no_run
/// # async fn demo(ctx: sourcegraph_backup_core::ExportContext) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use sourcegraph_backup_core::Exporter;
/// use sourcegraph_backup_pg::{Database, PgConnectionConfig, PgStore};
///
/// let config = PgConnectionConfig::from_env(Database::Frontend)?;
/// let store = PgStore::for_role(Database::Frontend, config);
/// let report = store.export(ctx).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgStore {
    id: String,
    config: PgConnectionConfig,
    catalog: Vec<CatalogId>,
    export: PgExportOptions,
    import: PgImportOptions,
}

impl PgStore {
    /// A store with id `id` (e.g. `pgsql`) at `config`, with default options.
    pub fn new(id: impl Into<String>, config: PgConnectionConfig) -> Self {
        PgStore {
            id: id.into(),
            config,
            catalog: Vec::new(),
            export: PgExportOptions::default(),
            import: PgImportOptions::default(),
        }
    }

    /// The store of one of Sourcegraph's databases, with its store id (`pgsql`,
    /// `codeintel-db`, `codeinsights-db`).
    pub fn for_role(database: Database, config: PgConnectionConfig) -> Self {
        Self::new(database.store_id(), config)
    }

    /// Sets the catalog rows this store carries.
    pub fn with_catalog(mut self, catalog: impl IntoIterator<Item = impl Into<CatalogId>>) -> Self {
        self.catalog = catalog.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the export options.
    pub fn with_export_options(mut self, options: PgExportOptions) -> Self {
        self.export = options;
        self
    }

    /// Sets the import options.
    pub fn with_import_options(mut self, options: PgImportOptions) -> Self {
        self.import = options;
        self
    }

    /// The connection settings.
    pub fn config(&self) -> &PgConnectionConfig {
        &self.config
    }

    /// The export options.
    pub fn export_options(&self) -> &PgExportOptions {
        &self.export
    }

    /// The import options.
    pub fn import_options(&self) -> &PgImportOptions {
        &self.import
    }
}

#[async_trait]
impl DataStore for PgStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> StoreKind {
        StoreKind::Postgres
    }

    fn catalog(&self) -> Vec<CatalogId> {
        self.catalog.clone()
    }

    fn location(&self) -> String {
        self.config.redacted_url()
    }

    async fn check_reachable(&self) -> Result<(), StoreError> {
        let client = self.config.connect().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(query_err(format!("checking {}", self.config.endpoint())))?;
        Ok(())
    }
}

#[async_trait]
impl Exporter for PgStore {
    async fn export(&self, ctx: ExportContext) -> Result<ExportReport, StoreError> {
        Ok(crate::export::export(&self.config, &self.export, ctx).await?)
    }
}

#[async_trait]
impl Importer for PgStore {
    async fn import(&self, ctx: ImportContext) -> Result<ImportReport, StoreError> {
        Ok(crate::import::import(&self.config, &self.import, ctx).await?)
    }
}
