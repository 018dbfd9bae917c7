//! The error type of the Postgres store.
//!
//! Every variant names what failed and where (host/port/database, table, file). No variant ever
//! carries a password: connection errors describe the target with
//! [`PgConnectionConfig::endpoint`](crate::connection::PgConnectionConfig::endpoint).

use std::path::PathBuf;

use sourcegraph_backup_core::{StoreError, StoreErrorKind};

/// Errors of the Postgres store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    // --- connection and probe ---
    /// A connection string (URL or key=value) could not be understood.
    #[error("invalid PostgreSQL connection string: {reason}")]
    InvalidConnectionString {
        /// What is wrong (never echoes a password).
        reason: String,
    },
    /// An environment variable holds a value that cannot be used.
    #[error("invalid environment variable {var}: {reason}")]
    InvalidEnv {
        /// The variable name, e.g. `CODEINTEL_PGPORT`.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// A root certificate file (`sslrootcert`) could not be read or holds no certificate.
    #[error("cannot use root certificate {path}: {reason}")]
    RootCertificate {
        /// The file given as `sslrootcert`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A client certificate or key file (`sslcert`, `sslkey`, or their defaults in
    /// `~/.postgresql`) could not be used.
    #[error("cannot use client certificate {path}: {reason}")]
    ClientCertificate {
        /// The certificate or key file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The TLS client configuration could not be built.
    #[error("TLS setup failed: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
    },
    /// Connecting (or authenticating) to a server failed.
    #[error(
        "cannot connect to PostgreSQL at {endpoint} (sslmode={sslmode}): {}",
        describe(source)
    )]
    Connect {
        /// `host:port/dbname` of the target (no user, no password).
        endpoint: String,
        /// The sslmode that was used.
        sslmode: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A catalog or bookkeeping query failed.
    #[error("query failed while {context}: {}", describe(source))]
    Query {
        /// What was being done, e.g. "reading table sizes of database sg".
        context: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    // --- schema extraction ---
    /// The dumped schema holds an object the native schema extractor cannot reproduce; the
    /// backup refuses it rather than silently leaving it out.
    #[error(
        "the schema contains a {kind} {name} that the schema extractor does not support; \
         drop it or exclude its schema before backing up"
    )]
    UnsupportedObject {
        /// The object kind, e.g. "foreign table", "text search configuration".
        kind: String,
        /// The object's qualified name.
        name: String,
    },
    /// The catalogs hold something the extractor did not expect (e.g. a row that vanished).
    #[error("unexpected catalog contents while {context}: {reason}")]
    SchemaCatalog {
        /// What was being read.
        context: String,
        /// What was unexpected.
        reason: String,
    },
    /// The database has neither `migration_logs` nor legacy `schema_migrations` tables.
    #[error(
        "database {database:?} is not a Sourcegraph database (no migration_logs table and no \
         legacy schema_migrations table); to back it up as a generic PostgreSQL database, opt in \
         (command line: `--allow-generic`; library: `ProbeOptions {{ allow_generic: true }}`)"
    )]
    NotSourcegraph {
        /// The database name.
        database: String,
    },
    // --- data export and import ---
    /// Streaming a table's data out of (or into) the server failed, e.g. the backend was
    /// terminated mid-COPY.
    #[error("{direction} of table {table} failed: {}", describe(.source))]
    Copy {
        /// `COPY TO` (export) or `COPY FROM` (import).
        direction: &'static str,
        /// The qualified table name (and part, when the table was split).
        table: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Taking the `ACCESS SHARE` lock on a dumped table failed: it was dropped, or another
    /// session holds a conflicting lock (a concurrent `DROP`/`ALTER`) past the lock timeout.
    #[error(
        "cannot lock table {table} for the backup (dropped or altered concurrently, or locked \
         by another session longer than the lock timeout): {}", describe(.source)
    )]
    Lock {
        /// The qualified table name.
        table: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Another session held (or was queued ahead for) an `ACCESS EXCLUSIVE` lock on a dumped
    /// table for longer than the backup waits for a lock
    /// ([`PgExportOptions::lock_timeout`](crate::PgExportOptions::lock_timeout)).
    #[error(
        "cannot lock table {table} for the backup: another session kept a conflicting lock \
         longer than the backup waits ({waited:?}, PgExportOptions::lock_timeout); blocking: \
         {blockers}"
    )]
    LockTimeout {
        /// The qualified table name (several, comma-separated, when the statement that timed
        /// out could not be tied to one table).
        table: String,
        /// How long the backup waited.
        waited: std::time::Duration,
        /// The blocking sessions: pid, user, state and statement text (truncated), and
        /// nothing else of them.
        blockers: String,
    },
    /// A worker's connection was lost while copying a table part; the part was redone once on
    /// a new connection attached to the same snapshot, and that failed too.
    #[error(
        "copying {part} failed: its worker's connection was lost ({lost}) and redoing the part \
         on a new connection failed: {reason}"
    )]
    RedoFailed {
        /// The qualified table name (and page range, when the table was split).
        part: String,
        /// Why the first connection was lost.
        lost: String,
        /// Why the redo failed.
        reason: String,
    },
    /// Writing or reading an artifact of the backup failed.
    #[error("artifact {artifact}: {source}")]
    Artifact {
        /// The artifact name inside the store.
        artifact: String,
        /// The repository error (boxed: it is large).
        #[source]
        source: Box<sourcegraph_backup_core::CoreError>,
    },
    /// The backup's Postgres artifacts are missing a piece or malformed.
    #[error("the backup of store {store} is malformed: {reason}")]
    MalformedBackup {
        /// The store id.
        store: String,
        /// What is wrong.
        reason: String,
    },
    /// The backup records the store's details in a newer format than this release reads.
    #[error(
        "store {store}: the backup records its details in format {found}, written by a newer \
         release: upgrade sourcegraph-backup (this release reads format {supported} and older)"
    )]
    NewerFormat {
        /// The store id.
        store: String,
        /// The format found in the manifest.
        found: u32,
        /// The newest format this release reads.
        supported: u32,
    },
    /// Something the store writes (its manifest details, its schema dump, its import report)
    /// could not be serialised as JSON.
    #[error("store {store}: cannot serialise the {what} as JSON: {reason}")]
    Serialize {
        /// The store id.
        store: String,
        /// What was serialised (`manifest details`, `export options`, `schema dump`,
        /// `import report`).
        what: &'static str,
        /// What the JSON writer said.
        reason: String,
    },
    /// The restore target already holds relations in the schemas being restored.
    #[error(
        "target database {database:?} is not empty: it already has {count} relation(s) in the \
         schemas being restored (e.g. {examples}); restore into an empty database, or drop them \
         first (command line: `--clean`; library: `PgImportOptions::clean_first`)"
    )]
    TargetNotEmpty {
        /// The target database name.
        database: String,
        /// How many relations were found.
        count: usize,
        /// A few of them, qualified.
        examples: String,
    },
    /// The target records another Sourcegraph version than the backup.
    #[error(
        "target database {database:?} records Sourcegraph version {target} but the backup was \
         taken at version {backup}; refusing to restore over it (override: `--force` \
         on the command line, `PgImportOptions::force` in the library)"
    )]
    VersionMismatch {
        /// The target database name.
        database: String,
        /// The version the target records.
        target: String,
        /// The version the backup records.
        backup: String,
    },
    /// The target server cannot hold the backed-up schema; nothing was written.
    #[error("target database {database:?} cannot restore this backup (nothing was written): {problems}")]
    IncompatibleTarget {
        /// The target database name.
        database: String,
        /// Every problem, joined with "; ".
        problems: String,
    },
    /// Executing a piece of the restored schema or data failed.
    #[error("restoring {what} failed: {}", describe(.source))]
    Restore {
        /// What was executed, e.g. "pre-data schema" or "index public.repo_name_idx".
        what: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A worker task stopped unexpectedly (panicked or was cancelled).
    #[error("a {what} worker stopped unexpectedly: {reason}")]
    Worker {
        /// Which kind of worker.
        what: &'static str,
        /// What happened.
        reason: String,
    },
}

/// The driver error with its cause: tokio-postgres' own `Display` says only "db error" or
/// "error connecting to server", the server's message and the I/O or TLS reason are in the
/// source chain.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!(" (hint: {hint})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

impl PgError {
    /// What a caller can do about this error.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            PgError::Connect { .. }
            | PgError::InvalidConnectionString { .. }
            | PgError::InvalidEnv { .. }
            | PgError::RootCertificate { .. }
            | PgError::ClientCertificate { .. }
            | PgError::Tls { .. } => StoreErrorKind::Unreachable,
            PgError::TargetNotEmpty { .. } => StoreErrorKind::TargetNotEmpty,
            PgError::VersionMismatch { .. } | PgError::IncompatibleTarget { .. } => {
                StoreErrorKind::IncompatibleTarget
            }
            PgError::MalformedBackup { .. } | PgError::NewerFormat { .. } => StoreErrorKind::CorruptBackup,
            PgError::Artifact { source, .. } => source.kind(),
            PgError::UnsupportedObject { .. } | PgError::NotSourcegraph { .. } => {
                StoreErrorKind::UnsupportedObject
            }
            _ => StoreErrorKind::Other,
        }
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        StoreError::new(e.kind(), e)
    }
}
