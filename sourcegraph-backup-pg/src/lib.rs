//! Postgres store for sourcegraph-backup: connections, probing, schema extraction and data export.
//!
//! [`PgStore`] implements the core `Exporter` and `Importer` for one database (`pgsql`,
//! `codeintel-db`, `codeinsights-db`, or a generic database with
//! [`PgExportOptions::allow_generic`]). A store's artifacts in a backup are:
//!
//! | artifact | content |
//! |---|---|
//! | `schema.json.zst` | the [`schema::SchemaDump`] the importer restores from |
//! | `schema.pre-data.sql.zst` | extensions, schemas, types, functions, tables, views... |
//! | `data/<schema>.<table>.<NNNN>.copy.zst` | `COPY` text data, one file per table or ctid range |
//! | `sequences.sql.zst` | one `setval` per sequence |
//! | `schema.post-data.sql.zst` | keys, constraints, indexes, triggers, policies... |
//! | `restore.sh` | the commands below, for this backup's tables (uncompressed) |
//!
//! Names in `data/` encode every byte outside `[A-Za-z0-9_-]` as `+HH`; the manifest's store
//! details (`tables[].artifacts`, `tables[].columns`) map them to tables and column lists.
//!
//! # Restoring by hand (zstd and psql only)
//!
//! Without this library, a store's directory of a local backup restores into an empty
//! database `$TARGET` (a connection string or URL), as the tables' owner or a superuser, with:
//!
//! ```sh
//! export PGCLIENTENCODING=UTF8
//! zstd -dc schema.pre-data.sql.zst | psql -X -q -v ON_ERROR_STOP=1 -d "$TARGET"
//! # for each data file, in the order of the manifest, with that table's column list:
//! zstd -dc 'data/public.repo.0000.copy.zst' \
//!   | psql -X -q -v ON_ERROR_STOP=1 -d "$TARGET" -c '\copy "public"."repo" ("id", "name", ...) FROM pstdin'
//! zstd -dc sequences.sql.zst | psql -X -q -v ON_ERROR_STOP=1 -d "$TARGET"
//! zstd -dc schema.post-data.sql.zst | psql -X -q -v ON_ERROR_STOP=1 -d "$TARGET"
//! psql -X -q -v ON_ERROR_STOP=1 -d "$TARGET" -c ANALYZE
//! ```
//!
//! Every backup carries these exact commands, with each table's quoted name and columns
//! filled in, as `restore.sh`: `TARGET='postgres://...' sh restore.sh` from the store's
//! directory (`<repository>/<backup-id>/<store>/`). `tests/by_hand.rs` runs it.

pub mod connection;
pub mod error;
pub mod export;
pub mod import;
pub mod probe;
pub mod schema;
mod store;
mod tls;

pub use connection::{DatabaseRole, PgConnectionConfig, SslMode};
pub use error::PgError;
pub use export::{PgExportOptions, TableDataExclusion};
pub use import::PgImportOptions;
pub use probe::{probe, ProbeOptions, ProbeReport, SourcegraphSchema};
pub use store::PgStore;
