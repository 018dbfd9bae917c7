//! Building the stores from command-line arguments: the only place that knows
//! the store crates' constructors.

use std::path::Path;
use std::sync::Arc;

use sourcegraph_backup::config::{ConfigFilePaths, ConfigStore, DatabaseSourceOptions, ImportOptions};
use sourcegraph_backup::core::{Exporter, Importer, StoreKind};
use sourcegraph_backup::pg::schema::RenderOptions;
use sourcegraph_backup::pg::{DatabaseRole, PgConnectionConfig, PgExportOptions, PgImportOptions, PgStore};
use sourcegraph_backup::volumes::VolumeStore;

use super::args::{ConfigArgs, Databases};
use super::Error;

/// One store, usable as exporter and importer.
#[derive(Clone)]
pub struct StoreHandle {
    /// As an exporter (backup).
    pub exporter: Arc<dyn Exporter>,
    /// As an importer (restore).
    pub importer: Arc<dyn Importer>,
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

    /// The store id.
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
}

/// Per-store tuning taken from the command line.
#[derive(Clone, Copy, Default)]
pub struct Tuning {
    /// Connections per database, parts per volume.
    pub jobs: usize,
    /// Accept databases that are not Sourcegraph databases.
    pub allow_generic: bool,
    /// Replace what a non-empty target holds.
    pub overwrite: bool,
    /// With `overwrite`, restore over a database of another Sourcegraph version.
    pub force: bool,
}

/// A URL or a libpq `key=value` string.
fn parse_connection(text: &str) -> Result<PgConnectionConfig, Error> {
    let parsed = if text.contains("://") {
        PgConnectionConfig::from_url(text)
    } else {
        PgConnectionConfig::from_key_value(text)
    };
    Ok(parsed?)
}

/// The connection of one database: its URL option, else the environment when
/// `--from-env` is given, else none.
pub fn connection(dbs: &Databases, role: DatabaseRole) -> Result<Option<PgConnectionConfig>, Error> {
    let url = match role {
        DatabaseRole::Frontend => dbs.pgsql.as_deref(),
        DatabaseRole::CodeIntel => dbs.codeintel.as_deref(),
        DatabaseRole::CodeInsights => dbs.codeinsights.as_deref(),
    };
    match url {
        Some(url) => parse_connection(url).map(Some),
        None if dbs.from_env => Ok(Some(PgConnectionConfig::from_env(role)?)),
        None => Ok(None),
    }
}

/// The store of one of the three databases; `render` says which owners, grants and role
/// map a restore uses.
pub fn database(
    role: DatabaseRole,
    conn: PgConnectionConfig,
    tuning: Tuning,
    render: RenderOptions,
) -> StoreHandle {
    let export = PgExportOptions {
        jobs: tuning.jobs,
        allow_generic: tuning.allow_generic,
        ..PgExportOptions::default()
    };
    let import = PgImportOptions {
        jobs: tuning.jobs,
        clean_first: tuning.overwrite,
        force: tuning.force,
        render,
        ..PgImportOptions::default()
    };
    StoreHandle::new(
        PgStore::for_role(role, conn)
            .with_export_options(export)
            .with_import_options(import),
    )
}

/// The database stores named by `--pgsql`, `--codeintel`, `--codeinsights` or
/// `--from-env` (all three from the environment).
pub fn databases(dbs: &Databases, tuning: Tuning) -> Result<Vec<StoreHandle>, Error> {
    let mut out = Vec::new();
    for role in DatabaseRole::ALL {
        if let Some(conn) = connection(dbs, role)? {
            out.push(database(role, conn, tuning, RenderOptions::default()));
        }
    }
    Ok(out)
}

/// Where configuration is read or written.
pub enum ConfigPlace {
    /// The main database.
    Database(Box<PgConnectionConfig>),
    /// A directory of files.
    Files(std::path::PathBuf),
}

/// Resolves `--config-db` / `--config-files`, falling back to the main
/// database of `dbs` (configuration lives in it).
pub fn config_place(config: &ConfigArgs, dbs: &Databases) -> Result<Option<ConfigPlace>, Error> {
    if let Some(dir) = &config.config_files {
        return Ok(Some(ConfigPlace::Files(dir.clone())));
    }
    if let Some(url) = &config.config_db {
        return Ok(Some(ConfigPlace::Database(Box::new(parse_connection(url)?))));
    }
    Ok(connection(dbs, DatabaseRole::Frontend)?.map(|c| ConfigPlace::Database(Box::new(c))))
}

/// The configuration store at `place`; `dry_run` makes its restore change nothing;
/// `carry_encrypted` carries code host connections encrypted at rest as ciphertext
/// (restorable only where the same keys are configured) instead of failing.
pub fn config(place: ConfigPlace, dry_run: bool, carry_encrypted: bool) -> Result<StoreHandle, Error> {
    config_into(place, dry_run, carry_encrypted, false)
}

/// [`config`], and `overwrite`: a restore into files replaces files that exist (`--clean`)
/// instead of refusing them.
pub fn config_into(
    place: ConfigPlace,
    dry_run: bool,
    carry_encrypted: bool,
    overwrite: bool,
) -> Result<StoreHandle, Error> {
    let store = match place {
        ConfigPlace::Database(conn) => ConfigStore::database(*conn),
        ConfigPlace::Files(dir) => ConfigStore::files(ConfigFilePaths::in_dir(dir)),
    };
    let import = ImportOptions {
        dry_run,
        overwrite,
        ..ImportOptions::default()
    };
    let source = DatabaseSourceOptions {
        carry_encrypted,
        ..DatabaseSourceOptions::default()
    };
    Ok(StoreHandle::new(
        store.with_import_options(import).with_source_options(source),
    ))
}

/// The store of volume `name` at `path`.
pub fn volume(
    name: &str,
    path: &Path,
    deployment: sourcegraph_backup::core::Deployment,
    tuning: Tuning,
) -> StoreHandle {
    let mut store = VolumeStore::new(name, path).with_deployment(deployment);
    if tuning.jobs > 0 {
        store = store.concurrency(tuning.jobs.min(8));
    }
    StoreHandle::new(store.overwrite(tuning.overwrite))
}
