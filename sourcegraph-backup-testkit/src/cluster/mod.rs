//! Throwaway PostgreSQL clusters: initdb into a temporary directory, start on a free loopback
//! port, stop and delete everything on drop.

mod binaries;
mod managed;
mod start;
mod user;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) use binaries::is_executable;
pub use binaries::{tools_dir, PgBinaries};

/// Every `/usr/lib/postgresql/<major>/bin`, for the client tools search.
pub(crate) fn debian_bin_dirs_for_clients() -> Vec<PathBuf> {
    binaries::debian_bin_dirs()
        .into_iter()
        .map(|(_, dir)| dir)
        .collect()
}
pub use user::CLUSTER_OS_USER;

use crate::error::{HarnessError, Result};
use crate::process::run_checked;
use user::Runner;

/// Settings for [`PgCluster::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra server settings (`name`, `value`), written to the cluster's configuration.
    pub settings: Vec<(String, String)>,
    /// Keep crash safety (fsync, synchronous_commit, full_page_writes on), for benchmarks.
    /// By default they are off, which makes tests much faster.
    pub durable: bool,
}

impl ClusterOptions {
    /// Adds one server setting, e.g. `("shared_buffers", "256MB")`.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Sets [`ClusterOptions::durable`].
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
}

/// A running throwaway PostgreSQL cluster, reachable on 127.0.0.1 as superuser `postgres` with
/// trust authentication. Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct PgCluster {
    binaries: PgBinaries,
    runner: Runner,
    major: u32,
    port: u16,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    postmaster_pid: Option<i32>,
    /// Whether `pg_ctl start` was run, i.e. whether there may be a server to stop.
    started: bool,
    /// Removed after the server is stopped; `None` once cleaned up.
    dir: Option<tempfile::TempDir>,
}

const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";

impl PgCluster {
    /// Starts a cluster of the default server ([`PgBinaries::find`]) with default options.
    pub async fn start() -> Result<Self> {
        Self::start_with(&PgBinaries::find()?, ClusterOptions::default()).await
    }

    /// Starts a cluster of `binaries` with `options`, and waits until it accepts connections.
    pub async fn start_with(binaries: &PgBinaries, options: ClusterOptions) -> Result<Self> {
        let binaries = binaries.clone();
        let major = binaries.major();
        let cluster = tokio::task::spawn_blocking(move || start::start_blocking(binaries, options))
            .await
            .map_err(|e| HarnessError::Startup {
                major,
                data_dir: PathBuf::new(),
                reason: format!("the start task failed: {e}"),
                log_path: PathBuf::new(),
                log_tail: String::new(),
            })??;
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Connects until a connection succeeds (pg_ctl -w already waited; this makes sure TCP is
    /// usable too).
    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match tokio_postgres::connect(&self.key_value("postgres"), tokio_postgres::NoTls).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(self.startup_error(format!("no connection within 60 s: {e}")))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Host to connect to: "127.0.0.1".
    pub fn host(&self) -> &str {
        HOST
    }

    /// Directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Superuser name: "postgres" (trust authentication, no password).
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// Major version of the server.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// Directory of the server programs.
    pub fn bin_dir(&self) -> &Path {
        self.binaries.bin_dir()
    }

    /// The server binaries this cluster runs.
    pub fn binaries(&self) -> &PgBinaries {
        &self.binaries
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Pid of the postmaster, as read from postmaster.pid after start.
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.postmaster_pid.and_then(|p| u32::try_from(p).ok())
    }

    /// Connection URL for database `db`: `postgres://postgres@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@{HOST}:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// libpq key=value connection string for database `db`.
    pub fn key_value(&self, db: &str) -> String {
        self.key_value_as(SUPERUSER, db)
    }

    /// libpq key=value connection string for database `db` as `role` (loopback connections
    /// are trusted: no password).
    pub fn key_value_as(&self, role: &str, db: &str) -> String {
        format!(
            "host={HOST} port={} user={} dbname={}",
            self.port,
            quote_conninfo_value(role),
            quote_conninfo_value(db)
        )
    }

    /// Connects to database `db` as the superuser; the connection task is spawned on the current
    /// tokio runtime and ends when the client is dropped.
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client> {
        self.connect_as(SUPERUSER, db).await
    }

    /// Connects to database `db` as `role`, as [`connect`](Self::connect) does.
    pub async fn connect_as(&self, role: &str, db: &str) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.key_value_as(role, db), tokio_postgres::NoTls)
                .await
                .map_err(|source| HarnessError::Postgres {
                    what: format!("connecting to 127.0.0.1:{}", self.port),
                    database: db.into(),
                    source,
                })?;
        tokio::spawn(async move {
            // Errors here mean the server went away; the client's next call reports it.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// `CREATE DATABASE name` (name quoted as an identifier).
    pub async fn create_database(&self, name: &str) -> Result<()> {
        let sql = format!("CREATE DATABASE {}", quote_ident(name));
        self.batch_execute("postgres", &sql).await
    }

    /// Runs `sql` (one or more statements) in database `db`.
    pub async fn batch_execute(&self, db: &str, sql: &str) -> Result<()> {
        let client = self.connect(db).await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|source| HarnessError::Postgres {
                what: "executing SQL".into(),
                database: db.into(),
                source,
            })
    }

    /// Runs the SQL statements in file `path` in database `db` (psql meta-commands are not
    /// supported).
    pub async fn execute_sql_file(&self, db: &str, path: &Path) -> Result<()> {
        let sql = tokio::fs::read_to_string(path)
            .await
            .map_err(|source| HarnessError::Io {
                what: "reading SQL file",
                path: path.to_path_buf(),
                source,
            })?;
        let client = self.connect(db).await?;
        client
            .batch_execute(&sql)
            .await
            .map_err(|source| HarnessError::Postgres {
                what: format!("executing SQL file {}", path.display()),
                database: db.into(),
                source,
            })
    }

    /// Stops the server (fast, then immediate, then SIGKILL) and removes its directory; reports
    /// whether the server had to be killed.
    pub fn stop(mut self) -> Result<()> {
        let outcome = self.shutdown();
        self.remove_dir();
        outcome
    }

    /// Stops the server if it was started; blocking. Only touches the postmaster this cluster
    /// started.
    fn shutdown(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        let mut problems = Vec::new();
        if self.data_dir.join("postmaster.pid").exists() {
            for mode in ["fast", "immediate"] {
                let mut cmd = self.runner.command(&self.binaries.program("pg_ctl"));
                cmd.arg("-D")
                    .arg(&self.data_dir)
                    .args(["-m", mode, "-w", "-t", "30", "stop"])
                    .current_dir(self.root());
                match run_checked(&mut cmd) {
                    Ok(_) => break,
                    Err(e) => problems.push(format!("pg_ctl stop -m {mode}: {e}")),
                }
            }
        }
        if let Some(pid) = self.postmaster_pid.take() {
            if process_alive(pid) {
                problems.push(format!("postmaster {pid} still alive, sent SIGKILL"));
                // SAFETY: kill has no memory-safety preconditions; pid is the postmaster this
                // cluster started (read from its own postmaster.pid).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let deadline = Instant::now() + Duration::from_secs(10);
                while process_alive(pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        start::release_port(self.port);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(HarnessError::Stop {
                data_dir: self.data_dir.clone(),
                reason: problems.join("; "),
            })
        }
    }

    fn remove_dir(&mut self) {
        if let Some(dir) = self.dir.take() {
            // Nothing useful to do if removal fails during cleanup (already a best effort).
            let _ = dir.close();
        }
    }

    /// The cluster's temporary root directory (data, socket dir, log).
    fn root(&self) -> &Path {
        self.data_dir.parent().unwrap_or(&self.data_dir)
    }

    fn startup_error(&self, reason: String) -> HarnessError {
        HarnessError::Startup {
            major: self.major,
            data_dir: self.data_dir.clone(),
            reason,
            log_path: self.log_path.clone(),
            log_tail: start::log_tail(&self.log_path),
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Errors are already handled as well as possible (escalating to SIGKILL).
        let _ = self.shutdown();
        self.remove_dir();
    }
}

/// Whether a process with `pid` exists (zombies count as gone).
fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    if !exists {
        return false;
    }
    // A reaped-later zombie still answers kill(0); treat state Z as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Quotes `name` as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a libpq conninfo value when it needs it.
fn quote_conninfo_value(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_conninfo_value("sg"), "sg");
        assert_eq!(quote_conninfo_value("my db's"), "'my db\\'s'");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}
