//! # sourcegraph-backup
//!
//! Back up a Sourcegraph instance and migrate it to a new one. This crate is a
//! facade over the four crates that do the work:
//!
//! - [`core`]: the traits, the backup repository (local or object storage),
//!   the catalog and planner, progress events and the pipelines;
//! - [`pg`]: the three PostgreSQL databases;
//! - [`config`]: site configuration, code host connections and global settings;
//! - [`volumes`]: persistent volumes (git repositories, indexes, metrics, ...).
//!
//! A backup of a whole instance (the three databases, the configuration and
//! the volumes of a Docker Compose deployment) into S3, in about 20 lines:
//!
//! ```no_run
//! use std::sync::Arc;
//! use sourcegraph_backup::config::ConfigStore;
//! use sourcegraph_backup::core::pipeline::BackupPipeline;
//! use sourcegraph_backup::core::{plan, BackupOption, BackupRepository, Deployment, PlanRequest, ProgressSink};
//! use sourcegraph_backup::pg::{DatabaseRole, PgConnectionConfig, PgStore};
//! use sourcegraph_backup::volumes::{VolumePreset, DOCKER_VOLUMES_ROOT};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let plan = plan(&PlanRequest::new(BackupOption::AllData, Deployment::DockerCompose));
//! let repo = BackupRepository::open("s3://backups/sourcegraph")?; // AWS_* from the environment
//! let (progress, mut events) = ProgressSink::channel();
//! tokio::spawn(async move { while let Some(e) = events.recv().await { eprintln!("{e:?}") } });
//! let mut pipeline = BackupPipeline::new(repo, plan.clone()).progress(progress).concurrency(4);
//! for role in DatabaseRole::ALL {
//!     let conn = PgConnectionConfig::from_env(role)?; // PG*, CODEINTEL_PG*, CODEINSIGHTS_PG*
//!     pipeline = pipeline.exporter(Arc::new(PgStore::for_role(role, conn)));
//! }
//! let frontend = PgConnectionConfig::from_env(DatabaseRole::Frontend)?;
//! pipeline = pipeline.exporter(Arc::new(ConfigStore::database(frontend)));
//! let volumes = VolumePreset::docker_compose(DOCKER_VOLUMES_ROOT);
//! for store in plan.included_stores().filter(|s| s.kind == sourcegraph_backup::core::StoreKind::Volume) {
//!     pipeline = pipeline.exporter(Arc::new(volumes.store(&store.id)?));
//! }
//! let outcome = pipeline.run().await?; // no manifest unless every store succeeded
//! println!("backup {} holds {} bytes", outcome.manifest.backup_id, outcome.manifest.stored_bytes());
//! # Ok(()) }
//! ```
//!
//! The `examples/` directory holds three command-line programs built on this
//! API only (`config_only`, `postgres_only`, `all_data`) and the `demo`.

pub use sourcegraph_backup_config as config;
pub use sourcegraph_backup_core as core;
pub use sourcegraph_backup_pg as pg;
pub use sourcegraph_backup_volumes as volumes;
