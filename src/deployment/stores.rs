//! The stores of a deployment: the one place that knows the store crates' constructors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConfigFilePaths, ConfigStore, DatabaseSourceOptions, ImportOptions};
use crate::core::model::Database;
use crate::core::{Deployment, Exporter, Importer, StoreKind};
use crate::pg::schema::RenderOptions;
use crate::pg::{PgConnectionConfig, PgError, PgExportOptions, PgImportOptions, PgStore};
use crate::volumes::VolumeStore;

/// One store of a deployment, usable as exporter (backup) and importer (restore).
#[derive(Clone, Debug)]
pub struct StoreHandle {
    exporter: Arc<dyn Exporter>,
    importer: Arc<dyn Importer>,
}

impl StoreHandle {
    /// Wraps a store that is both exporter and importer.
    pub fn new<T: Exporter + Importer + 'static>(store: T) -> Self {
        let store = Arc::new(store);
        StoreHandle {
            exporter: store.clone(),
            importer: store,
        }
    }

    /// The store id (`pgsql`, `config`, `gitserver-0`, ...).
    pub fn id(&self) -> &str {
        self.exporter.id()
    }

    /// The store kind.
    pub fn kind(&self) -> StoreKind {
        self.exporter.kind()
    }

    /// Where it is, without secrets.
    pub fn location(&self) -> String {
        self.exporter.location()
    }

    /// The store as an exporter.
    pub fn exporter(&self) -> Arc<dyn Exporter> {
        self.exporter.clone()
    }

    /// The store as an importer.
    pub fn importer(&self) -> Arc<dyn Importer> {
        self.importer.clone()
    }
}

/// Per-store settings shared by every store of a deployment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tuning {
    /// Connections per database, parts per volume (0: the stores' defaults).
    pub jobs: usize,
    /// Accept databases that are not Sourcegraph databases.
    pub allow_generic: bool,
    /// Carry code host connections encrypted at rest as ciphertext.
    pub carry_encrypted: bool,
    /// Replace what a non-empty target holds.
    pub overwrite: bool,
    /// With `overwrite`, restore over a database of another Sourcegraph version.
    pub force: bool,
    /// A configuration restore that changes nothing.
    pub dry_run: bool,
    /// Owners, grants and role map of restored databases.
    pub render: RenderOptions,
}

/// Parses a `postgres://` URL or a libpq `key=value` string.
pub fn parse_connection(text: &str) -> Result<PgConnectionConfig, PgError> {
    if text.contains("://") {
        PgConnectionConfig::from_url(text)
    } else {
        PgConnectionConfig::from_key_value(text)
    }
}

/// The connection Sourcegraph's services read from the environment for `db` (`PG*`,
/// `CODEINTEL_PG*`, `CODEINSIGHTS_PG*`).
pub fn connection_from_env(db: Database) -> Result<PgConnectionConfig, PgError> {
    PgConnectionConfig::from_env(db)
}

/// The store of one of the three databases.
// Fields set one by one: the store crates' option structs may become #[non_exhaustive].
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn database(db: Database, conn: PgConnectionConfig, tuning: &Tuning) -> StoreHandle {
    let mut export = PgExportOptions::default();
    export.jobs = tuning.jobs;
    export.allow_generic = tuning.allow_generic;
    let mut import = PgImportOptions::default();
    import.jobs = tuning.jobs;
    import.clean_first = tuning.overwrite;
    import.force = tuning.force;
    import.render = tuning.render.clone();
    StoreHandle::new(
        PgStore::new(db.store_id(), conn)
            .with_export_options(export)
            .with_import_options(import),
    )
}

/// Where configuration is read (backup) or written (restore).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConfigSource {
    /// The main (frontend) database, which holds the configuration.
    Database(Box<PgConnectionConfig>),
    /// A directory of files: `site-config.json` (the site configuration), `global-settings.json`
    /// and `extsvc-config.json` (code host connections), the names Sourcegraph's
    /// `SITE_CONFIG_FILE`, `GLOBAL_SETTINGS_FILE` and `EXTSVC_CONFIG_FILE` conventionally use.
    Files(PathBuf),
}

/// The configuration store at `source`.
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn config(source: ConfigSource, tuning: &Tuning) -> StoreHandle {
    let store = match source {
        ConfigSource::Database(conn) => ConfigStore::database(*conn),
        ConfigSource::Files(dir) => ConfigStore::files(ConfigFilePaths::in_dir(dir)),
    };
    let mut import = ImportOptions::default();
    import.dry_run = tuning.dry_run;
    import.overwrite = tuning.overwrite;
    let mut source = DatabaseSourceOptions::default();
    source.carry_encrypted = tuning.carry_encrypted;
    StoreHandle::new(store.with_import_options(import).with_source_options(source))
}

/// The store of volume `name` at `path`.
pub(crate) fn volume(name: &str, path: &Path, deployment: Deployment, tuning: &Tuning) -> StoreHandle {
    let mut store = VolumeStore::new(name, path).with_deployment(deployment);
    if tuning.jobs > 0 {
        store = store.concurrency(tuning.jobs.min(8));
    }
    StoreHandle::new(store.overwrite(tuning.overwrite))
}
