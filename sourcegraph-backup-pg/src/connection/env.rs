//! The environment variables Sourcegraph's services read, per database.
//!
//! Mirrors `internal/database/postgresdsn.New` of the Sourcegraph code base: `<P>PGDATASOURCE`
//! (a full DSN) wins; otherwise `<P>PGHOST`, `<P>PGPORT` (quotes stripped), `<P>PGUSER`,
//! `<P>PGPASSWORD`, `<P>PGDATABASE`, `<P>PGSSLMODE`, where `<P>` is the database's prefix. Empty values
//! count as unset. `<P>PGTZ` is ignored. Like libpq (and pgx, which the services use), the TLS
//! and credential files are read too: `<P>PGSSLROOTCERT`, `<P>PGSSLCERT`, `<P>PGSSLKEY`,
//! `<P>PGPASSFILE`.

use super::parse::Builder;
use super::{os_user_from, Database, PgConnectionConfig};
use crate::error::PgError;

/// Strips one pair of matching single or double quotes, as Sourcegraph does for `PGPORT`.
fn dequote(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() > 2 && b[0] == b[b.len() - 1] && (b[0] == b'\'' || b[0] == b'"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Restates an error about a value so that it names the variable it came from.
fn for_var(var: &str, e: PgError) -> PgError {
    match e {
        PgError::InvalidConnectionString { reason } => PgError::InvalidEnv {
            var: var.to_owned(),
            reason,
        },
        other => other,
    }
}

pub(super) fn from_env_with(
    database: Database,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<PgConnectionConfig, PgError> {
    let prefix = database.env_prefix();
    let get = |name: &str| -> (String, Option<String>) {
        let var = format!("{prefix}{name}");
        let value = lookup(&var).filter(|v| !v.is_empty());
        (var, value)
    };
    let default_user = os_user_from(&lookup);

    if let (var, Some(dsn)) = get("PGDATASOURCE") {
        return super::parse::from_any(&dsn, &default_user).map_err(|e| for_var(&var, e));
    }

    let mut b = Builder::default();
    for (name, key) in [
        ("PGHOST", "host"),
        ("PGPORT", "port"),
        ("PGUSER", "user"),
        ("PGPASSWORD", "password"),
        ("PGDATABASE", "dbname"),
        ("PGSSLMODE", "sslmode"),
        ("PGSSLROOTCERT", "sslrootcert"),
        ("PGSSLCERT", "sslcert"),
        ("PGSSLKEY", "sslkey"),
        ("PGPASSFILE", "passfile"),
    ] {
        if let (var, Some(value)) = get(name) {
            let value = if name == "PGPORT" { dequote(&value) } else { &value };
            b.apply(key, value).map_err(|e| for_var(&var, e))?;
        }
    }
    b.finish(&default_user)
}
