//! The configuration store's error type.
//!
//! No variant carries a document's text or a secret value: documents are named by kind and display
//! name, positions by line and column, fields by their path.

use std::path::PathBuf;

use sourcegraph_backup_core::{StoreError, StoreErrorKind};

/// Errors of the configuration store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A document is not valid JSONC or not a JSON object.
    #[error("{document} is not valid: {reason} at line {line}, column {column}")]
    InvalidDocument {
        /// The document's name (e.g. `site configuration`, `code host GITHUB "GitHub"`).
        document: String,
        /// What is wrong (never quotes the text).
        reason: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
    },
    /// A code host connection lacks a field its kind requires.
    #[error("{document} lacks required field {field}")]
    MissingField {
        /// The document's name.
        document: String,
        /// The missing field (alternatives separated by ` or `).
        field: String,
    },
    /// A secret field still holds the redaction marker: the document came from Sourcegraph's API
    /// and importing it would lose the secret.
    #[error("{document}: secret field {field} holds the redaction marker REDACTED instead of the secret; export from the database or the configuration files, not from the API")]
    RedactedSecret {
        /// The document's name.
        document: String,
        /// The field path, e.g. `auth.providers[0].clientSecret`.
        field: String,
    },
    /// Code host connections are stored encrypted and the caller did not opt in to carrying
    /// ciphertext.
    #[error("code host connections are encrypted at rest and cannot be read without the key: {}; to carry the ciphertext (restorable only into an instance with the same encryption keys), pass `--carry-encrypted` (library: `DatabaseSourceOptions::carry_encrypted`)", connections.join(", "))]
    EncryptedConnections {
        /// `id 3 GITHUB "GitHub"` per connection.
        connections: Vec<String>,
    },
    /// The snapshot holds something the target cannot take.
    #[error("cannot import: {reason}")]
    Unsupported {
        /// What and why.
        reason: String,
    },
    /// The target database lacks a table or column this store reads or writes.
    #[error("the {database} database lacks {what}; is it a Sourcegraph frontend database?")]
    Schema {
        /// Endpoint of the database.
        database: String,
        /// The missing table or column, e.g. `table settings` or `column external_services.config`.
        what: String,
    },
    /// The target changed between planning and writing (optimistic concurrency).
    #[error("someone else has already applied a newer edit to {document} (planned against {planned}, found {found}); nothing was written, plan again")]
    Conflict {
        /// The document whose revision moved.
        document: String,
        /// The revision planned against.
        planned: String,
        /// The revision found.
        found: String,
    },
    /// A database query failed. Only the SQLSTATE and the server's one-line message are kept:
    /// the server's DETAIL can quote a failing row, i.e. a secret.
    #[error("query failed while {context}: {reason}")]
    Query {
        /// What was being done.
        context: String,
        /// SQLSTATE and message (never the DETAIL).
        reason: String,
        /// The SQLSTATE code, when the server sent one.
        code: Option<String>,
    },
    /// Connecting failed (boxed: the driver error is large).
    #[error(transparent)]
    Connect(Box<sourcegraph_backup_pg::PgError>),
    /// A file could not be read or written.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// read, write, rename, ...
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Restoring into files would replace files that already exist, and overwriting was not
    /// asked for. Nothing was written.
    #[error("the configuration files to restore into already exist: {}; refusing to replace them without overwriting (command line: `--clean`; library: `ImportOptions::overwrite`)", display_paths(files))]
    TargetExists {
        /// The target files that exist.
        files: Vec<PathBuf>,
    },
    /// An input configuration file is not a regular file (a device, FIFO, socket or directory,
    /// possibly behind a symbolic link).
    #[error("{path} is not a regular file but a {what}; configuration is read from regular files only")]
    NotRegularFile {
        /// The file as named.
        path: PathBuf,
        /// What it is: `character device`, `FIFO`, `directory`, ...
        what: &'static str,
    },
    /// An input configuration file is larger than [`MAX_CONFIG_FILE_SIZE`](crate::files::MAX_CONFIG_FILE_SIZE).
    #[error("{path} holds more than {limit} bytes ({} MiB), the most a configuration file may hold; Sourcegraph's configuration documents are kilobytes", limit / (1024 * 1024))]
    FileTooLarge {
        /// The file as named.
        path: PathBuf,
        /// The cap in bytes.
        limit: u64,
    },
    /// A file is not UTF-8.
    #[error("{path} is not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// The backup's configuration section is missing or inconsistent.
    #[error("the configuration section of the backup is malformed: {reason}")]
    Manifest {
        /// What is wrong.
        reason: String,
    },
    /// The backup's configuration section has a format this release cannot read.
    #[error("store {store}: the backup records the configuration in format {found}, written by a newer release: upgrade sourcegraph-backup (this release reads format {supported} and older)")]
    NewerFormat {
        /// The store id (`config`).
        store: String,
        /// The format found in the manifest.
        found: u32,
        /// The newest format this release reads.
        supported: u32,
    },
    /// A report could not be serialised.
    #[error("cannot serialise the {what}: {reason}")]
    Serialize {
        /// What was serialised (`manifest details`, `import report`).
        what: &'static str,
        /// What the JSON writer said.
        reason: String,
    },
    /// Reading or writing an artifact failed.
    #[error(transparent)]
    Core(Box<sourcegraph_backup_core::CoreError>),
}

fn display_paths(paths: &[PathBuf]) -> String {
    let v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

impl From<sourcegraph_backup_pg::PgError> for ConfigError {
    fn from(e: sourcegraph_backup_pg::PgError) -> Self {
        ConfigError::Connect(Box::new(e))
    }
}

impl From<sourcegraph_backup_core::CoreError> for ConfigError {
    fn from(e: sourcegraph_backup_core::CoreError) -> Self {
        ConfigError::Core(Box::new(e))
    }
}

impl ConfigError {
    pub(crate) fn query(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |e| {
            let (reason, code) = match e.as_db_error() {
                Some(db) => (
                    format!("{} ({})", db.message(), db.code().code()),
                    Some(db.code().code().to_owned()),
                ),
                None => (e.to_string(), None),
            };
            ConfigError::Query {
                context,
                reason,
                code,
            }
        }
    }

    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ConfigError::Io {
            operation,
            path,
            source,
        }
    }
}

impl ConfigError {
    /// What a caller can do about this error.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            ConfigError::Connect(e) => e.kind(),
            ConfigError::TargetExists { .. } => StoreErrorKind::TargetNotEmpty,
            ConfigError::Schema { .. } | ConfigError::EncryptedConnections { .. } => {
                StoreErrorKind::IncompatibleTarget
            }
            ConfigError::Unsupported { .. }
            | ConfigError::NotRegularFile { .. }
            | ConfigError::FileTooLarge { .. } => StoreErrorKind::UnsupportedObject,
            ConfigError::Manifest { .. } | ConfigError::NewerFormat { .. } => StoreErrorKind::CorruptBackup,
            ConfigError::Core(e) => e.kind(),
            _ => StoreErrorKind::Other,
        }
    }
}

impl From<ConfigError> for StoreError {
    fn from(e: ConfigError) -> Self {
        StoreError::new(e.kind(), e)
    }
}
