//! # sourcegraph-backup
//!
//! Back up a Sourcegraph instance and migrate it to a new one. This crate is what an ops team
//! embeds in its own tooling: a [`deployment`] (one [`Instance`](deployment::Instance)
//! describes where a Sourcegraph deployment keeps its data, plans a backup of it, checks it
//! and runs it; the same description is the target of a restore), the [`report`]s every
//! operation returns (typed, `Serialize` for scripts, `Display` for people), and a facade over
//! the four crates that do the work:
//!
//! - [`core`]: the traits, the backup repository (local or object storage),
//!   the catalog and planner, progress events and the pipelines;
//! - [`pg`]: the three PostgreSQL databases;
//! - [`config`]: site configuration, code host connections and global settings;
//! - [`volumes`]: persistent volumes (git repositories, indexes, metrics, ...).
//!
//! The `sourcegraph-backup` command (crate `sourcegraph-backup-cli`) is built on this API
//! alone.
//!
//! The README's embedding example (a backup of a whole instance into S3 through a
//! [`deployment::Instance`]) is compiled with this crate's doc tests, from the README itself.
//!
//! A backup with the store crates by hand, for full control over each store:
//!
//! ```no_run
//! use std::sync::Arc;
//! use sourcegraph_backup::config::ConfigStore;
//! use sourcegraph_backup::core::pipeline::BackupPipeline;
//! use sourcegraph_backup::core::{plan, BackupOption, BackupRepository, Deployment, PlanRequest, ProgressSink};
//! use sourcegraph_backup::pg::{Database, PgConnectionConfig, PgStore};
//! use sourcegraph_backup::volumes::{VolumePreset, DOCKER_VOLUMES_ROOT};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let plan = plan(&PlanRequest::new(BackupOption::AllData, Deployment::DockerCompose));
//! let repo = BackupRepository::open("s3://backups/sourcegraph")?;
//! let mut pipeline = BackupPipeline::new(repo, plan.clone()).concurrency(4);
//! for role in Database::ALL {
//!     let conn = PgConnectionConfig::from_env(role)?;
//!     pipeline = pipeline.exporter(Arc::new(PgStore::for_role(role, conn)));
//! }
//! let frontend = PgConnectionConfig::from_env(Database::Frontend)?;
//! pipeline = pipeline.exporter(Arc::new(ConfigStore::database(frontend)));
//! let volumes = VolumePreset::docker_compose(DOCKER_VOLUMES_ROOT);
//! for store in plan.included_stores().filter(|s| s.kind == sourcegraph_backup::core::StoreKind::Volume) {
//!     pipeline = pipeline.exporter(Arc::new(volumes.store(&store.id)?));
//! }
//! let outcome = pipeline.run().await?;
//! println!("backup {} holds {} bytes", outcome.manifest.backup_id, outcome.manifest.stored_bytes());
//! # Ok(()) }
//! ```
//!
//! The `examples/` directory holds one short program per backup option (`config_only`,
//! `postgres_only`, `all_data`) built on [`deployment`], and the `demo`.

pub mod deployment;
pub mod report;

/// The README's code, compiled and checked as doc tests (the README is the only copy).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use sourcegraph_backup_config as config;
pub use sourcegraph_backup_core as core;
pub use sourcegraph_backup_pg as pg;
pub use sourcegraph_backup_volumes as volumes;
