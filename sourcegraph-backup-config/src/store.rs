//! [`ConfigStore`]: the configuration as a store of the backup pipeline (`DataStore`,
//! `Exporter`, `Importer`).

use async_trait::async_trait;
use bytes::Bytes;
use sourcegraph_backup_core::model::CatalogId;
use sourcegraph_backup_core::{
    ArtifactOptions, DataStore, ExportContext, ExportReport, Exporter, ImportContext, ImportReport, Importer,
    SourceInfo, StoreError, StoreKind,
};
use sourcegraph_backup_pg::PgConnectionConfig;

use crate::db::{import_with_client, DatabaseSourceOptions, ImportOptions};
use crate::error::ConfigError;
use crate::files::{ConfigFilePaths, EXTSVC_FILE_NAME, EXTSVC_FILE_WARNING};
use crate::jsonc::validate_document;
use crate::keys::encryption_keys;
use crate::layout::{artifact_names, entry, ConfigDetails, DETAILS_FORMAT, UI_README};
use crate::model::{sha256_hex, ConfigDocument, ConfigSnapshot};
use crate::redact::find_redacted_secrets;
use crate::report::{DatabaseImportDetails, DocumentDiff, FilesImportDetails};

/// The store id used in backups.
pub const STORE_ID: &str = "config";

/// Where the configuration lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLocation {
    /// The frontend database.
    Database(PgConnectionConfig),
    /// The start-up files.
    Files(ConfigFilePaths),
}

/// The configuration store: exports a [`ConfigSnapshot`] from a database or files, and imports
/// one into a database (as new revisions) or files.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    id: String,
    location: ConfigLocation,
    source_options: DatabaseSourceOptions,
    import_options: ImportOptions,
}

impl ConfigStore {
    /// The store of a frontend database.
    pub fn database(config: PgConnectionConfig) -> Self {
        Self::new(ConfigLocation::Database(config))
    }

    /// The store of the start-up files.
    pub fn files(paths: ConfigFilePaths) -> Self {
        Self::new(ConfigLocation::Files(paths))
    }

    /// A store at `location` with id [`STORE_ID`] and default options.
    pub fn new(location: ConfigLocation) -> Self {
        ConfigStore {
            id: STORE_ID.to_owned(),
            location,
            source_options: DatabaseSourceOptions::default(),
            import_options: ImportOptions::default(),
        }
    }

    /// Sets how a database is read (e.g. `carry_encrypted`).
    #[must_use]
    pub fn with_source_options(mut self, options: DatabaseSourceOptions) -> Self {
        self.source_options = options;
        self
    }

    /// Sets how imports behave (`remove_missing`, `dry_run`, `tenant_id` for a database;
    /// `dry_run`, `overwrite` for files).
    #[must_use]
    pub fn with_import_options(mut self, options: ImportOptions) -> Self {
        self.import_options = options;
        self
    }

    /// Into files: replace configuration files that already exist (command line: `--clean`;
    /// sets [`ImportOptions::overwrite`]). Without it, an import into files refuses, writing
    /// nothing, when any target file exists.
    #[must_use]
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.import_options.overwrite = overwrite;
        self
    }

    /// Uses another store id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Where the store is.
    pub fn config_location(&self) -> &ConfigLocation {
        &self.location
    }

    /// Reads the current configuration.
    pub async fn snapshot(&self) -> Result<ConfigSnapshot, ConfigError> {
        match &self.location {
            ConfigLocation::Database(c) => ConfigSnapshot::from_database(c, &self.source_options).await,
            ConfigLocation::Files(p) => ConfigSnapshot::from_files(p).await,
        }
    }

    /// Writes `snapshot` into `ctx`'s backup; returns the report (details = [`ConfigDetails`]).
    /// Its warnings (also sent as progress warnings) name, per field path, every secret that
    /// holds Sourcegraph's `REDACTED` marker instead of the secret: such a backup cannot
    /// restore it.
    pub async fn export_snapshot(
        &self,
        snapshot: &ConfigSnapshot,
        ctx: &ExportContext,
    ) -> Result<ExportReport, ConfigError> {
        let store = ctx.store().to_owned();
        let mut warnings = snapshot.warnings.clone();
        let names = artifact_names(snapshot);
        let mut documents = Vec::new();
        for (d, (artifact, ui)) in snapshot.documents.iter().zip(names) {
            if let Err(e) = validate_document(d) {
                warnings.push(format!("carried as is, but it will not import: {e}"));
            } else if let Ok(fields) = find_redacted_secrets(d) {
                for field in fields {
                    warnings.push(format!(
                        "{}: secret field {field} holds REDACTED (Sourcegraph's redaction marker) instead of the secret; \
                         this backup cannot restore it, and a restore refuses the document (the text was \
                         likely saved from a copy taken through the API: put the real secret back and back up again)",
                        d.name()
                    ));
                }
            }
            let content_type = if d.is_encrypted() {
                "application/octet-stream"
            } else {
                "application/jsonc"
            };
            let bytes = Bytes::from(d.text.clone());
            ctx.put_artifact(&artifact, ArtifactOptions::plain(content_type), bytes.clone())
                .await?;
            if let Some(ui) = &ui {
                ctx.put_artifact(ui, ArtifactOptions::plain("application/jsonc"), bytes)
                    .await?;
            }
            ctx.progress().bytes(&store, d.text.len() as u64);
            documents.push(entry(d, artifact, ui));
        }
        if documents.iter().any(|d| d.ui_artifact.is_some()) {
            ctx.put_artifact(
                "ui/README.txt",
                ArtifactOptions::plain("text/plain"),
                Bytes::from_static(UI_README.as_bytes()),
            )
            .await?;
        }
        // Start-up files of the plaintext documents.
        let plain = ConfigSnapshot {
            documents: snapshot
                .documents
                .iter()
                .filter(|d| !d.is_encrypted())
                .cloned()
                .collect(),
            ..snapshot.clone()
        };
        let mut files = Vec::new();
        let mut extsvc_file_verbatim = false;
        for (name, text) in plain.file_layout()? {
            if name == EXTSVC_FILE_NAME {
                extsvc_file_verbatim = plain.extsvc_file_text.as_deref() == Some(text.as_str());
            }
            let artifact = format!("files/{name}");
            ctx.put_artifact(
                &artifact,
                ArtifactOptions::plain("application/json"),
                Bytes::from(text),
            )
            .await?;
            files.push(artifact);
        }
        if plain.code_hosts().next().is_some() {
            warnings.push(format!("files/{EXTSVC_FILE_NAME}: {EXTSVC_FILE_WARNING}"));
        }
        let encrypted_documents: Vec<String> = snapshot.encrypted().map(ConfigDocument::name).collect();
        if !encrypted_documents.is_empty() {
            warnings.push(format!(
                "carried as ciphertext, restorable only into an instance with the same encryption keys: {}",
                encrypted_documents.join(", ")
            ));
        }
        let keys: Vec<_> = snapshot.site_configurations().flat_map(encryption_keys).collect();
        for k in &keys {
            warnings.push(format!(
                "the new instance needs the same encryption key material: {k}"
            ));
        }
        for w in &warnings {
            ctx.progress().warning(&store, w.clone());
        }
        let details = ConfigDetails {
            format: DETAILS_FORMAT,
            source: snapshot.source.clone(),
            documents,
            encrypted_documents,
            encryption_keys: keys,
            files,
            extsvc_file_verbatim,
        };
        Ok(ExportReport {
            details: to_json("manifest details", &details)?,
            warnings,
            source: SourceInfo::default(),
        })
    }

    /// Reads the snapshot a backup holds (each document verified against its recorded sha256).
    /// Details of a newer format (written by a newer release) are refused, naming the store.
    pub async fn read_snapshot(ctx: &ImportContext) -> Result<ConfigSnapshot, ConfigError> {
        let details = ConfigDetails::from_manifest(ctx.store(), &ctx.store_manifest().details)?;
        let mut documents = Vec::new();
        for e in &details.documents {
            let text = read_text(ctx, &e.artifact).await?;
            ctx.progress().bytes(ctx.store(), text.len() as u64);
            if sha256_hex(text.as_bytes()) != e.sha256 {
                return Err(ConfigError::Manifest {
                    reason: format!(
                        "artifact {} does not match the sha256 recorded for {}",
                        e.artifact, e.name
                    ),
                });
            }
            documents.push(ConfigDocument {
                kind: e.document.clone(),
                text,
                provenance: e.provenance.clone(),
                encryption: e.encryption.clone(),
            });
        }
        let extsvc_file_text = if details.extsvc_file_verbatim {
            Some(read_text(ctx, &format!("files/{EXTSVC_FILE_NAME}")).await?)
        } else {
            None
        };
        Ok(ConfigSnapshot {
            documents,
            source: format!("backup {} ({})", ctx.backup().id(), details.source),
            taken_at: Some(ctx.manifest().created_at),
            extsvc_file_text,
            warnings: Vec::new(),
        })
    }

    /// Imports `snapshot` into this store's location. Into a database: new revisions (see
    /// [`ImportOptions`]). Into files: validated as for a database (a secret holding `REDACTED`
    /// is refused), refused when a target file exists unless [`ImportOptions::overwrite`], the
    /// files written private (`0600`, new directories `0700`); the report's details
    /// ([`FilesImportDetails`]) list the `files` (written, or to write in a dry run) and the
    /// existing ones `replaced`. Into a database, they are [`DatabaseImportDetails`].
    pub async fn import_snapshot(&self, snapshot: &ConfigSnapshot) -> Result<ImportReport, ConfigError> {
        match &self.location {
            ConfigLocation::Database(c) => {
                let mut client = c.connect().await?;
                let outcome =
                    import_with_client(&mut client, &c.endpoint(), snapshot, &self.import_options).await?;
                let details = DatabaseImportDetails {
                    target: c.endpoint(),
                    dry_run: outcome.dry_run,
                    written: outcome.written,
                    changes: outcome.plan.summary(),
                    diffs: outcome
                        .plan
                        .changes
                        .iter()
                        .filter(|c| !c.diff.is_empty())
                        .map(|c| DocumentDiff {
                            document: c.document.clone(),
                            diff: c.diff.clone(),
                        })
                        .collect(),
                };
                Ok(ImportReport {
                    details: to_json("import report", &details)?,
                    warnings: Vec::new(),
                    bytes: snapshot.documents.iter().map(|d| d.text.len() as u64).sum(),
                })
            }
            ConfigLocation::Files(p) => {
                // Validation, the target check and `overwrite` alike for a dry run.
                let plan = snapshot.plan_files(p, self.import_options.overwrite).await?;
                if !self.import_options.dry_run {
                    plan.write().await?;
                }
                let details = FilesImportDetails {
                    dry_run: self.import_options.dry_run,
                    site_config_file: p.site_config_env(),
                    global_settings_file: p.global_settings.as_ref().map(|p| p.display().to_string()),
                    extsvc_config_file: p.extsvc_config.as_ref().map(|p| p.display().to_string()),
                    files: plan.written(),
                    replaced: plan.replaced(),
                };
                Ok(ImportReport {
                    details: to_json("import report", &details)?,
                    warnings: plan.warnings,
                    bytes: snapshot.documents.iter().map(|d| d.text.len() as u64).sum(),
                })
            }
        }
    }
}

/// Serialises a report's details.
fn to_json(what: &'static str, value: &impl serde::Serialize) -> Result<serde_json::Value, ConfigError> {
    serde_json::to_value(value).map_err(|e| ConfigError::Serialize {
        what,
        reason: e.to_string(),
    })
}

async fn read_text(ctx: &ImportContext, artifact: &str) -> Result<String, ConfigError> {
    let bytes = ctx.read_small(artifact).await?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ConfigError::Manifest {
        reason: format!("artifact {artifact} is not UTF-8"),
    })
}

#[async_trait]
impl DataStore for ConfigStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> StoreKind {
        StoreKind::Config
    }

    fn catalog(&self) -> Vec<CatalogId> {
        ["site-configuration", "code-host-connections", "global-settings"]
            .map(CatalogId::from)
            .to_vec()
    }

    fn location(&self) -> String {
        match &self.location {
            ConfigLocation::Database(c) => format!("configuration in database {}", c.redacted_url()),
            ConfigLocation::Files(p) => format!(
                "configuration files SITE_CONFIG_FILE={} GLOBAL_SETTINGS_FILE={} EXTSVC_CONFIG_FILE={}",
                p.site_config_env(),
                p.global_settings
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                p.extsvc_config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        }
    }

    async fn check_reachable(&self) -> Result<(), StoreError> {
        match &self.location {
            ConfigLocation::Database(c) => {
                let client = c.connect().await.map_err(|e| ConfigError::Connect(Box::new(e)))?;
                client
                    .simple_query("SELECT 1")
                    .await
                    .map_err(ConfigError::query("checking the connection"))?;
            }
            ConfigLocation::Files(p) => {
                for path in p
                    .site_config
                    .iter()
                    .chain(&p.global_settings)
                    .chain(&p.extsvc_config)
                {
                    tokio::fs::metadata(path)
                        .await
                        .map_err(ConfigError::io("stat", path))?;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Exporter for ConfigStore {
    async fn export(&self, ctx: ExportContext) -> Result<ExportReport, StoreError> {
        let snapshot = self.snapshot().await?;
        Ok(self.export_snapshot(&snapshot, &ctx).await?)
    }
}

#[async_trait]
impl Importer for ConfigStore {
    async fn import(&self, ctx: ImportContext) -> Result<ImportReport, StoreError> {
        let snapshot = Self::read_snapshot(&ctx).await?;
        Ok(self.import_snapshot(&snapshot).await?)
    }
}
