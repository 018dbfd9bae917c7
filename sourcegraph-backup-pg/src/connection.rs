//! Connection settings for the three Sourcegraph databases, and connecting with or without TLS.
//!
//! [`PgConnectionConfig`] is built from a `postgres://` URL, a libpq `key=value` string, or the
//! environment variables the Sourcegraph services read for a [`Database`]. It wraps the
//! settings `tokio_postgres::Config` needs plus the TLS and credential settings libpq has and
//! tokio-postgres lacks.
//!
//! # Parameters
//!
//! URL query parameters and `key=value` pairs take the same keys: `host`, `hostaddr`, `port`,
//! `user`, `password`, `dbname`, `options`, `application_name`, `connect_timeout`, `keepalives`,
//! `keepalives_idle`, `target_session_attrs`, `channel_binding`, and for TLS and credentials:
//!
//! | key | environment (frontend; `CODEINTEL_`/`CODEINSIGHTS_` prefixed for the others) | meaning |
//! |---|---|---|
//! | `sslmode` | `PGSSLMODE` | `disable`, `allow` (read as `prefer`), `prefer` (default), `require`, `verify-ca`, `verify-full` ([`SslMode`]) |
//! | `sslrootcert` | `PGSSLROOTCERT` | PEM file of the root certificates the server's chain is verified against; or `system` (below) |
//! | `sslcert` | `PGSSLCERT` | PEM file with the client certificate (and any intermediates), sent when the server asks |
//! | `sslkey` | `PGSSLKEY` | the client certificate's private key: PEM (PKCS#8, PKCS#1 or SEC1) or DER |
//! | `passfile` | `PGPASSFILE` | the password file |
//!
//! **The system trust store** (`sslrootcert=system`, spelled as in libpq 16): the server's
//! chain is verified against the operating system's roots, which is where managed-Postgres
//! providers' CAs are installed (they are not among the bundled web roots). As in libpq, the
//! sslmode then defaults to `verify-full`, and any other sslmode is refused. The roots are
//! read with `rustls-native-certs`: on Linux the distribution's bundle (`/etc/ssl/certs`
//! and friends), replaced by `SSL_CERT_FILE` and/or `SSL_CERT_DIR` when either is set. A file
//! really named `system` is given as `./system`.
//!
//! **Defaults read from the home directory** (`$HOME`), as libpq does, only when the file
//! exists:
//! - `~/.postgresql/root.crt` when no `sslrootcert` is given; with it, `require` verifies the
//!   chain like `verify-ca` (libpq's rule). Without it, `verify-ca` and `verify-full` verify
//!   against the bundled Mozilla roots (libpq would refuse to connect).
//! - `~/.postgresql/postgresql.crt` when no `sslcert` is given, with `~/.postgresql/postgresql.key`
//!   unless `sslkey` is given.
//!
//! A client certificate given explicitly (`sslcert`) must exist (libpq silently goes on without
//! it; here it is an error, which is clearer than the server's refusal). The private key must
//! not be accessible by the group or others (mode 0600 or less; 0640 or less when owned by
//! root), as libpq requires; encrypted keys are not supported (`sslpassword` is refused):
//! decrypt the key first, e.g. `openssl pkey -in client.key -out client.plain.key`.
//!
//! **The password file** is read when no password (or an empty one) was given: `passfile`,
//! else `PGPASSFILE` of the process environment, else `~/.pgpass`. Its lines are
//! `hostname:port:database:username:password`; a field that is exactly `*` matches anything,
//! `\:` and `\\` stand for `:` and `\`, lines starting with `#` are comments, and the first
//! matching line wins. The hostname is the `host` (the `hostaddr` when no host is given); a
//! connection through one of the usual default socket directories (`/tmp`,
//! `/var/run/postgresql`, `/run/postgresql`) matches `localhost`, other socket directories match
//! their path. As in libpq, a file that the group or others can access (any bit of 077) is
//! ignored with a warning on standard error. With several hosts, the first host that a line
//! matches supplies the password for all of them (tokio-postgres takes one password).
//!
//! `sslcrl`, `sslcrldir`, `sslpassword` and other libpq keys are refused with a message
//! rather than ignored; a few keys of other drivers (pgx, lib/pq) are ignored.
//!
//! A password never leaves this type in text form: `Display`, `Debug`,
//! [`PgConnectionConfig::redacted_url`] and every [`PgError`] leave it out, including one read
//! from the password file.

mod env;
mod parse;
mod pgpass;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sourcegraph_backup_core::model::Database;
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
    /// TLS required; the certificate is not verified unless a root certificate file is given
    /// (`sslrootcert`) or found (`~/.postgresql/root.crt`), in which case it is verified as for
    /// `verify-ca` (libpq behaves the same way).
    Require,
    /// TLS required; the certificate chain is verified against the root certificates
    /// (`sslrootcert`, else `~/.postgresql/root.crt`, else the Mozilla roots), the host name is
    /// not.
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

/// The file settings of a connection. Boxed in [`PgConnectionConfig`]: they are seldom set,
/// and the config is held by value in other types' enum variants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Files {
    /// `sslrootcert` (`system` for the OS trust store).
    pub(crate) ssl_root_cert: Option<PathBuf>,
    /// `sslcert`.
    pub(crate) ssl_cert: Option<PathBuf>,
    /// `sslkey`.
    pub(crate) ssl_key: Option<PathBuf>,
    /// `passfile`.
    pub(crate) passfile: Option<PathBuf>,
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
    files: Box<Files>,
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

    /// Reads the environment variables the Sourcegraph services read for `database`, exactly
    /// as they do (`internal/database/postgresdsn`): `PG*` for the frontend, `CODEINTEL_PG*` and
    /// `CODEINSIGHTS_PG*` for the others ([`Database::env_prefix`]). `PGDATASOURCE` if set,
    /// else `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
    /// `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY` and `PGPASSFILE` (`PGTZ` is ignored: the backup
    /// sets its own session time zone). Unset or empty variables take the Sourcegraph
    /// defaults: host 127.0.0.1, port 5432, user `$USER` else `postgres`, database = user,
    /// sslmode prefer (`verify-full` with `sslrootcert=system`).
    pub fn from_env(database: Database) -> Result<Self, PgError> {
        Self::from_env_with(database, |name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom variable lookup (for tests and for callers
    /// that hold the environment of another process, e.g. a container's).
    pub fn from_env_with(
        database: Database,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, PgError> {
        env::from_env_with(database, lookup)
    }

    /// Returns a copy that points at another database of the same server.
    #[must_use]
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = Some(dbname.into());
        self
    }

    /// Returns a copy with another sslmode. With `sslrootcert=system` only `verify-full` can
    /// connect (as in libpq); [`connect`](Self::connect) refuses any other.
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

    /// The root certificate file (`sslrootcert`) as given, if any; `system` means the OS trust
    /// store (see [`uses_system_roots`](Self::uses_system_roots)).
    pub fn ssl_root_cert(&self) -> Option<&Path> {
        self.files.ssl_root_cert.as_deref()
    }

    /// Whether the server is verified against the operating system's trust store
    /// (`sslrootcert=system`).
    pub fn uses_system_roots(&self) -> bool {
        self.files.ssl_root_cert.as_deref() == Some(Path::new(SYSTEM_ROOTS))
    }

    /// The client certificate file (`sslcert`), if given (the default
    /// `~/.postgresql/postgresql.crt` is looked for when connecting).
    pub fn ssl_cert(&self) -> Option<&Path> {
        self.files.ssl_cert.as_deref()
    }

    /// The client key file (`sslkey`), if given (default `~/.postgresql/postgresql.key`).
    pub fn ssl_key(&self) -> Option<&Path> {
        self.files.ssl_key.as_deref()
    }

    /// The password file (`passfile`), if given (else `PGPASSFILE`, else `~/.pgpass`, read
    /// when connecting without a password).
    pub fn passfile(&self) -> Option<&Path> {
        self.files.passfile.as_deref()
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
    /// `postgres://user@host:port/dbname?sslmode=...[&sslrootcert=...][&sslcert=...]
    /// [&sslkey=...][&passfile=...]`. Socket directories are percent-encoded (`%2Ftmp`). Parsing
    /// it back gives the same hosts, ports, user, database, sslmode, certificate and key files
    /// and password file (other options and the password are left out).
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
    ///
    /// Without a password, the password file is consulted; the TLS defaults of the home
    /// directory are looked for (see the [module docs](self)). Both read the process
    /// environment (`HOME`, `PGPASSFILE`) at this point, as libpq does when it connects.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        self.connect_with_env(|name| std::env::var(name).ok()).await
    }

    async fn connect_with_env(
        &self,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<tokio_postgres::Client, PgError> {
        self.check_system_roots_mode()?;
        let mut config = self.to_tokio_config();
        if self.password.as_deref().is_none_or(str::is_empty) {
            if let Some(password) = self.password_from_file(&lookup_env) {
                config.password(password);
            }
        }
        let mode = self.effective_ssl_mode();
        let connect_err = |source| PgError::Connect {
            endpoint: self.endpoint(),
            sslmode: self.ssl_mode.to_string(),
            source,
        };
        let connector = if mode == SslMode::Disable {
            None
        } else {
            let (roots, client) = self.tls_files(&lookup_env)?;
            crate::tls::connector(mode, &roots, client.as_ref())?
        };
        match connector {
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

impl PgConnectionConfig {
    /// libpq: `sslrootcert=system` goes with `verify-full` only.
    fn check_system_roots_mode(&self) -> Result<(), PgError> {
        if self.uses_system_roots() && self.ssl_mode != SslMode::VerifyFull {
            return Err(weak_mode_with_system_roots(self.ssl_mode));
        }
        Ok(())
    }

    /// The password of the password file for this connection, if any line matches. A file that
    /// is ignored (group/world-accessible, not a plain file) is reported on standard error,
    /// as libpq does.
    fn password_from_file(&self, lookup_env: impl Fn(&str) -> Option<String>) -> Option<Vec<u8>> {
        let path = pgpass::file_path(self.files.passfile.as_deref(), lookup_env)?;
        match pgpass::lookup_file(&path, &self.pgpass_targets()) {
            pgpass::Outcome::Found(password) => Some(password),
            pgpass::Outcome::NoMatch | pgpass::Outcome::Missing => None,
            pgpass::Outcome::Ignored(warning) => {
                eprintln!("{warning}");
                None
            }
        }
    }

    /// What the password file is searched for, one entry per host in connection order.
    fn pgpass_targets(&self) -> Vec<pgpass::Target<'_>> {
        let hosts: Vec<String> = if self.hosts.is_empty() {
            self.hostaddrs.iter().map(ToString::to_string).collect()
        } else {
            self.hosts.clone()
        };
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| pgpass::Target {
                host: pgpass::host_key(h),
                port: self.port_of(i).to_string(),
                dbname: self.dbname(),
                user: &self.user,
            })
            .collect()
    }

    /// The roots the server is verified against and the client certificate to offer, with the
    /// libpq defaults of the home directory applied.
    fn tls_files(
        &self,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<(crate::tls::Roots, Option<crate::tls::ClientCert>), PgError> {
        use crate::tls::{ClientCert, Roots};
        let pg_dir = home_dir(&lookup_env).map(|h| h.join(".postgresql"));
        let default_file = |name: &str| pg_dir.as_ref().map(|d| d.join(name)).filter(|p| p.is_file());
        let roots = match &self.files.ssl_root_cert {
            Some(_) if self.uses_system_roots() => Roots::System,
            Some(path) => Roots::File(path.clone()),
            None => default_file("root.crt").map_or(Roots::Bundled, Roots::File),
        };
        let cert = match &self.files.ssl_cert {
            Some(path) => {
                if !path.exists() {
                    return Err(PgError::ClientCertificate {
                        path: path.clone(),
                        reason: "no such file (given as sslcert)".to_owned(),
                    });
                }
                Some(path.clone())
            }
            None => default_file("postgresql.crt"),
        };
        let client = match cert {
            None => None,
            Some(cert) => {
                let key = match (&self.files.ssl_key, &pg_dir) {
                    (Some(key), _) => key.clone(),
                    (None, Some(dir)) => dir.join("postgresql.key"),
                    (None, None) => {
                        return Err(PgError::ClientCertificate {
                            path: cert,
                            reason: "certificate present, but no private key (give sslkey)".to_owned(),
                        })
                    }
                };
                Some(ClientCert { cert, key })
            }
        };
        Ok((roots, client))
    }
}

/// The `sslrootcert` value that selects the OS trust store.
pub(crate) const SYSTEM_ROOTS: &str = "system";

/// libpq's message for a weaker sslmode with `sslrootcert=system`.
pub(crate) fn weak_mode_with_system_roots(mode: SslMode) -> PgError {
    PgError::InvalidConnectionString {
        reason: format!(
            "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"
        ),
    }
}

/// The home directory: `$HOME` when set and not empty (libpq reads it first too).
fn home_dir(lookup_env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    lookup_env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
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
            .field("ssl_root_cert", &self.files.ssl_root_cert)
            .field("ssl_cert", &self.files.ssl_cert)
            .field("ssl_key", &self.files.ssl_key)
            .field("passfile", &self.files.passfile)
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
