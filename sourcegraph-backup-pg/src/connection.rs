//! Connection settings for the three Sourcegraph databases, and connecting with or without TLS.
//!
//! [`PgConnectionConfig`] is built from a `postgres://` URL, a libpq `key=value` string, or the
//! environment variables the Sourcegraph services read (see [`DatabaseRole`]). It wraps the
//! settings `tokio_postgres::Config` needs plus the TLS settings libpq has and tokio-postgres
//! lacks (`verify-ca`, `verify-full`, `sslrootcert`).
//!
//! A password never leaves this type in text form: `Display`, `Debug`,
//! [`PgConnectionConfig::redacted_url`] and every [`PgError`] leave it out.

mod env;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::config::{ChannelBinding, TargetSessionAttrs};

use crate::error::PgError;

/// The `application_name` reported to the server unless the connection string sets one.
pub const DEFAULT_APPLICATION_NAME: &str = "sourcegraph-backup";

/// The host used when none is given (Sourcegraph's default, not libpq's socket directory).
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The port used when none is given.
pub const DEFAULT_PORT: u16 = 5432;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain connection only.
    Disable,
    /// Try TLS (without certificate verification), fall back to plain if the server has no TLS.
    /// libpq's default; `allow` is read as `prefer`.
    #[default]
    Prefer,
    /// TLS required; the certificate is not verified unless `sslrootcert` is given, in which case
    /// it is verified as for `verify-ca` (libpq behaves the same way).
    Require,
    /// TLS required; the certificate chain is verified against the root certificates
    /// (`sslrootcert`, else the Mozilla roots), the host name is not.
    VerifyCa,
    /// TLS required; chain and host name are verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling (`disable`, `verify-full`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = PgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "allow" | "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(PgError::InvalidConnectionString {
                reason: format!(
                    "unknown sslmode {other:?} (expected disable, allow, prefer, require, \
                     verify-ca or verify-full)"
                ),
            }),
        }
    }
}

/// Which of Sourcegraph's three databases a connection is for.
///
/// Each role reads its own family of environment variables, exactly as the Sourcegraph services
/// do (`internal/database/postgresdsn`): `PG*` for the frontend, `CODEINTEL_PG*` and
/// `CODEINSIGHTS_PG*` for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseRole {
    /// The frontend database (`pgsql`): users, repos, settings, site config.
    Frontend,
    /// The code-intelligence database (`codeintel-db`).
    CodeIntel,
    /// The code-insights database (`codeinsights-db`).
    CodeInsights,
}

impl DatabaseRole {
    /// All three roles, frontend first.
    pub const ALL: [DatabaseRole; 3] = [
        DatabaseRole::Frontend,
        DatabaseRole::CodeIntel,
        DatabaseRole::CodeInsights,
    ];

    /// Prefix of this role's environment variables (`""`, `"CODEINTEL_"`, `"CODEINSIGHTS_"`).
    pub fn env_prefix(self) -> &'static str {
        match self {
            DatabaseRole::Frontend => "",
            DatabaseRole::CodeIntel => "CODEINTEL_",
            DatabaseRole::CodeInsights => "CODEINSIGHTS_",
        }
    }

    /// The catalog store id: `pgsql`, `codeintel-db` or `codeinsights-db`.
    pub fn store_id(self) -> &'static str {
        match self {
            DatabaseRole::Frontend => "pgsql",
            DatabaseRole::CodeIntel => "codeintel-db",
            DatabaseRole::CodeInsights => "codeinsights-db",
        }
    }

    /// The database name of the default deployment manifests (documentation only: an unset
    /// `PGDATABASE` means "same as the user", as in libpq).
    pub fn default_database(self) -> &'static str {
        match self {
            DatabaseRole::Frontend | DatabaseRole::CodeIntel => "sg",
            DatabaseRole::CodeInsights => "postgres",
        }
    }

    /// The user of the default deployment manifests (documentation only).
    pub fn default_user(self) -> &'static str {
        self.default_database()
    }

    /// Parses a store id (`pgsql`, `codeintel-db`, `codeinsights-db`).
    pub fn from_store_id(id: &str) -> Option<DatabaseRole> {
        DatabaseRole::ALL.into_iter().find(|r| r.store_id() == id)
    }
}

impl fmt::Display for DatabaseRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.store_id())
    }
}

/// How to reach one PostgreSQL database. See the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct PgConnectionConfig {
    /// Host names, IP addresses or (starting with `/`) Unix socket directories; never empty
    /// unless `hostaddrs` is set.
    hosts: Vec<String>,
    hostaddrs: Vec<IpAddr>,
    /// One port for all hosts, or one per host.
    ports: Vec<u16>,
    user: String,
    password: Option<String>,
    dbname: Option<String>,
    options: Option<String>,
    application_name: Option<String>,
    ssl_mode: SslMode,
    ssl_root_cert: Option<PathBuf>,
    connect_timeout: Option<Duration>,
    keepalives: Option<bool>,
    keepalives_idle: Option<Duration>,
    target_session_attrs: Option<TargetSessionAttrs>,
    channel_binding: Option<ChannelBinding>,
}

impl PgConnectionConfig {
    /// Parses a `postgres://` or `postgresql://` URL:
    /// `postgres://user:password@host:port,host2:port2/dbname?sslmode=verify-ca&sslrootcert=/ca.pem`.
    /// Percent-encoded parts are decoded; a host starting with `/` (e.g. `%2Ftmp`) is a Unix socket
    /// directory, as is a `host=/path` query parameter.
    pub fn from_url(url: &str) -> Result<Self, PgError> {
        parse::from_url(url, &os_user())
    }

    /// Parses a libpq `key=value` string: `host=... port=... user=... password='a b\'c' dbname=...`.
    pub fn from_key_value(s: &str) -> Result<Self, PgError> {
        parse::from_key_value(s, &os_user())
    }

    /// Reads this role's environment variables (see [`DatabaseRole`]): `PGDATASOURCE` if set,
    /// else `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE` (`PGTZ` is
    /// ignored: the backup sets its own session time zone). Unset or empty variables take the
    /// Sourcegraph defaults: host 127.0.0.1, port 5432, user `$USER` else `postgres`, database
    /// = user, sslmode prefer.
    pub fn from_env(role: DatabaseRole) -> Result<Self, PgError> {
        Self::from_env_with(role, |name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom variable lookup (for tests and for callers
    /// that hold the environment of another process, e.g. a container's).
    pub fn from_env_with(
        role: DatabaseRole,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, PgError> {
        env::from_env_with(role, lookup)
    }

    /// Returns a copy that points at another database of the same server.
    #[must_use]
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = Some(dbname.into());
        self
    }

    /// Returns a copy with another sslmode.
    #[must_use]
    pub fn with_ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// The first host (name, address or socket directory).
    pub fn host(&self) -> String {
        self.hosts()
            .into_iter()
            .next()
            .unwrap_or_else(|| DEFAULT_HOST.to_owned())
    }

    /// All hosts, in the order they are tried (`hostaddr` values when no host is given).
    pub fn hosts(&self) -> Vec<String> {
        if self.hosts.is_empty() {
            self.hostaddrs.iter().map(ToString::to_string).collect()
        } else {
            self.hosts.clone()
        }
    }

    /// Whether every host is a Unix socket directory.
    pub fn is_unix_socket(&self) -> bool {
        !self.hosts.is_empty() && self.hosts.iter().all(|h| h.starts_with('/'))
    }

    /// The port of the first host.
    pub fn port(&self) -> u16 {
        self.port_of(0)
    }

    /// The port used for host number `i`.
    fn port_of(&self, i: usize) -> u16 {
        self.ports
            .get(i)
            .or_else(|| self.ports.first())
            .copied()
            .unwrap_or(DEFAULT_PORT)
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether a password is set (the password itself is not exposed as text).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The database name; when none was given, the user name (libpq's rule).
    pub fn dbname(&self) -> &str {
        self.dbname.as_deref().unwrap_or(&self.user)
    }

    /// The requested sslmode.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The root certificate file (`sslrootcert`), if any.
    pub fn ssl_root_cert(&self) -> Option<&Path> {
        self.ssl_root_cert.as_deref()
    }

    /// The `application_name` sent to the server.
    pub fn application_name(&self) -> &str {
        self.application_name
            .as_deref()
            .unwrap_or(DEFAULT_APPLICATION_NAME)
    }

    /// `host:port/dbname` (hosts comma-separated), for messages: no user, no password.
    pub fn endpoint(&self) -> String {
        let hosts: Vec<String> = self
            .hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{h}:{}", self.port_of(i)))
            .collect();
        format!("{}/{}", hosts.join(","), self.dbname())
    }

    /// The URL without the password:
    /// `postgres://user@host:port/dbname?sslmode=...[&sslrootcert=...]`. Socket directories are
    /// percent-encoded (`%2Ftmp`). Parsing it back gives the same hosts, ports, user, database,
    /// sslmode and sslrootcert (other options and the password are left out).
    pub fn redacted_url(&self) -> String {
        parse::redacted_url(self)
    }

    /// The sslmode actually used: Postgres has no TLS over Unix sockets, so libpq (and this
    /// crate) connect in plain text there whatever the sslmode.
    pub fn effective_ssl_mode(&self) -> SslMode {
        if self.is_unix_socket() {
            SslMode::Disable
        } else {
            self.ssl_mode
        }
    }

    /// The tokio-postgres settings (TLS is handled by [`connect`](Self::connect)).
    pub fn to_tokio_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        for h in &self.hosts {
            c.host(h);
        }
        for a in &self.hostaddrs {
            c.hostaddr(*a);
        }
        for p in &self.ports {
            c.port(*p);
        }
        c.user(&self.user);
        if let Some(pw) = &self.password {
            c.password(pw);
        }
        c.dbname(self.dbname());
        if let Some(o) = &self.options {
            c.options(o);
        }
        c.application_name(self.application_name());
        c.ssl_mode(match self.effective_ssl_mode() {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        if let Some(t) = self.connect_timeout {
            c.connect_timeout(t);
        }
        if let Some(k) = self.keepalives {
            c.keepalives(k);
        }
        if let Some(k) = self.keepalives_idle {
            c.keepalives_idle(k);
        }
        if let Some(t) = self.target_session_attrs {
            c.target_session_attrs(t);
        }
        if let Some(b) = self.channel_binding {
            c.channel_binding(b);
        }
        c
    }

    /// Connects and spawns the connection task on the current Tokio runtime. The task ends when
    /// the returned client is dropped. Errors name the endpoint and sslmode, never the password.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let config = self.to_tokio_config();
        let mode = self.effective_ssl_mode();
        let connect_err = |source| PgError::Connect {
            endpoint: self.endpoint(),
            sslmode: self.ssl_mode.to_string(),
            source,
        };
        match crate::tls::connector(mode, self.ssl_root_cert())? {
            None => {
                let (client, connection) =
                    config.connect(tokio_postgres::NoTls).await.map_err(connect_err)?;
                // A broken connection surfaces as an error on the client's next call.
                tokio::spawn(async move { drop(connection.await) });
                Ok(client)
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls).await.map_err(connect_err)?;
                tokio::spawn(async move { drop(connection.await) });
                Ok(client)
            }
        }
    }
}

impl FromStr for PgConnectionConfig {
    type Err = PgError;

    /// A `postgres://`/`postgresql://` URL or a `key=value` string.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::from_any(s, &os_user())
    }
}

impl fmt::Display for PgConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

impl fmt::Debug for PgConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnectionConfig")
            .field("hosts", &self.hosts)
            .field("hostaddrs", &self.hostaddrs)
            .field("ports", &self.ports)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("options", &self.options)
            .field("application_name", &self.application_name)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The OS user from the process environment, else `postgres` (Sourcegraph's fallback).
fn os_user() -> String {
    os_user_from(|name| std::env::var(name).ok())
}

fn os_user_from(lookup: impl Fn(&str) -> Option<String>) -> String {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(lookup)
        .find(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres".to_owned())
}
