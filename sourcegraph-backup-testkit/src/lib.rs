//! Dev-only test harness for sourcegraph-backup: throwaway PostgreSQL clusters, the matching
//! client tools (pg_dump, pg_restore, psql) and an oracle that checks two databases hold the same
//! schema, rows and sequence states.
//! It also runs loopback object-storage servers for repository tests: moto's S3 server
//! ([`s3::S3Server`], with [`s3::CuttingProxy`] to simulate a server dying mid-upload) and the
//! Azurite blob emulator ([`azurite::AzuriteServer`]).
//!
//! Used by every PostgreSQL test, the demo and the benchmarks. Servers come from Debian
//! (`/usr/lib/postgresql/N/bin`) or from `.tools/` filled by `scripts/install-test-deps.sh`
//! (PostgreSQL 12 and 16 servers, PostgreSQL 16 clients). When nothing is found, starting a
//! cluster fails with install advice; tests never skip.
//!
//! When running as root, clusters run as the unprivileged OS user [`CLUSTER_OS_USER`]
//! (created on first use), because initdb and postgres refuse to run as root.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sourcegraph_backup_testkit::HarnessError> {
//! use sourcegraph_backup_testkit::{oracle, PgCluster};
//!
//! let src = PgCluster::start().await?; // default server, fsync off, 127.0.0.1:<free port>
//! src.create_database("sg").await?;
//! src.batch_execute("sg", "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)").await?;
//!
//! let dst = PgCluster::start().await?;
//! dst.create_database("sg").await?;
//! // ... back up src and restore into dst, connecting with src.url("sg") / dst.key_value("sg") ...
//! oracle::compare(&src, "sg", &dst, "sg").await?.assert_identical();
//! # Ok(()) }
//! // Dropping a cluster stops its server and deletes its directory.
//! ```

pub mod azurite;
pub mod cluster;
pub mod conformance;
mod daemon;
mod error;
pub mod oracle;
mod process;
pub mod s3;
pub mod tools;

pub use cluster::{tools_dir, ClusterOptions, PgBinaries, PgCluster, CLUSTER_OS_USER};
pub use error::{HarnessError, Result, INSTALL_ADVICE};
pub use oracle::{OracleReport, SequenceStates, TableFingerprints};
pub use tools::PgClientTools;
