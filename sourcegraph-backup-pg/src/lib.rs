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
//! details ([`layout::PgStoreDetails`]: `tables[].artifacts`, `tables[].columns`) map them to
//! tables and column lists. [`layout`] holds these names, which export and import share.
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
//!
//! # Privileges
//!
//! Neither backup nor restore needs a superuser; both work as the database owner that managed
//! Postgres (RDS, Cloud SQL, AlloyDB, Azure Flexible Server) gives its customers.
//! `tests/managed.rs` runs every fixture that way, 16 → 16 and 12 → 16.
//!
//! | operation | the connecting role needs |
//! |---|---|
//! | backup | `CONNECT` on the database, `USAGE` on the dumped schemas, `SELECT` on every dumped table and sequence (the owner has them all); read access to the catalogs, which every role has. It takes `ACCESS SHARE` locks, as `pg_dump` does. Row-level security does not hide rows from the tables' owner (unless `FORCE ROW LEVEL SECURITY`) or from a role with `BYPASSRLS`; anyone else is refused rather than given a partial dump. |
//! | restore into an empty database | `CONNECT` and `CREATE` on the database (the owner has both), and `CREATE` on schema `public` (the owner has it: `pg_database_owner` owns `public` from 15 on; before 15 `public` is open to all). Every restored object belongs to the connecting role. |
//! | extensions the target already has | nothing: an extension another role owns (the provider's administrator) is left as found, neither created nor commented, and the report says so once. It must live in the schema the backup expects. |
//! | extensions the target lacks | superuser, or (PostgreSQL 13+) `CREATE` on the database for a *trusted* extension (`citext`, `hstore`, `intarray`, `pg_trgm`, `pgcrypto` are; `pg_stat_statements` is not, and is optional, as Sourcegraph treats it). Otherwise the restore stops before any write, naming the extension and the `CREATE EXTENSION` an administrator should run. |
//! | policies | every role a policy names (`TO role`) must exist on the target, or be mapped to one that does (the role map); otherwise the restore stops before any write, naming them. |
//! | owners and grants (opt-in, [`RenderOptions`](schema::RenderOptions)) | the roles named (through the role map) must exist; for owners, the connecting role must be a member of each (`ALTER ... OWNER TO` requires it). |
//! | `clean_first` | ownership of what it drops. It refuses, before any write, to drop a schema that holds an extension the connecting role does not own (dropping the schema would take the extension with it, and the role could not create it again). |

pub mod compare;
pub mod connection;
pub mod error;
pub mod export;
pub mod import;
pub mod layout;
pub mod probe;
pub mod schema;
mod sizes;
mod sql;
mod store;
mod tls;

pub use compare::{compare, CompareOptions, CompareReport};
pub use connection::{PgConnectionConfig, SslMode};
pub use error::PgError;
pub use export::{PgExportOptions, TableDataExclusion};
pub use import::{PgImportOptions, PgImportReport};
pub use probe::{probe, ProbeOptions, ProbeReport};
/// The three Sourcegraph databases (core's one name for them): [`PgStore::for_role`] and
/// [`PgConnectionConfig::from_env`] take one.
pub use sourcegraph_backup_core::model::Database;
pub use store::PgStore;
