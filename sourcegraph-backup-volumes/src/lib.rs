//! # sourcegraph-backup-volumes
//!
//! Backs up and restores Sourcegraph's persistent volumes (gitserver shards,
//! search indexes, blobstore, Redis, Prometheus, Grafana, and database data
//! directories when the database is stopped) as streamed, checksummed tar
//! archives in a [`sourcegraph_backup_core::BackupRepository`].
//!
//! A [`VolumeStore`] is one named volume at a local directory; it implements
//! the core [`DataStore`](sourcegraph_backup_core::DataStore),
//! [`Exporter`](sourcegraph_backup_core::Exporter) and
//! [`Importer`](sourcegraph_backup_core::Importer) traits. A [`VolumePreset`]
//! finds the volumes of a standard Docker Compose or Kubernetes deployment.
//! Several gitserver shards are several stores.
//!
//! ```
//! use std::sync::Arc;
//! use sourcegraph_backup_core::{
//!     BackupOption, BackupRepository, DataStore, ExportContext, Exporter, ImportContext, Importer,
//!     ProgressSink, StoreSection,
//! };
//! use sourcegraph_backup_volumes::{VolumeDetails, VolumeStore};
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let src = tempfile::tempdir()?;
//! std::fs::create_dir_all(src.path().join("github.com/acme/app.git"))?;
//! std::fs::write(src.path().join("github.com/acme/app.git/HEAD"), "ref: refs/heads/main\n")?;
//!
//! let repo = BackupRepository::in_memory();
//! let backup = repo.start_backup(BackupOption::AllData);
//! let store = VolumeStore::new("gitserver-0", src.path());
//! let report = store
//!     .export(ExportContext::new(store.id(), backup.clone(), ProgressSink::disabled()))
//!     .await?;
//! let details = VolumeDetails::from_manifest(store.id(), &report.details)?;
//! assert_eq!(details.files, 1);
//! let section = StoreSection {
//!     id: store.id().into(), kind: store.kind(), catalog: store.catalog(),
//!     details: report.details, warnings: report.warnings,
//! };
//! backup.commit(vec![section], None, Default::default(), vec![]).await?;
//!
//! let target = tempfile::tempdir()?;
//! let restore = VolumeStore::new("gitserver-0", target.path().join("restored"));
//! let ctx = ImportContext::new("gitserver-0", repo.open_latest().await?, ProgressSink::disabled())?;
//! restore.import(ctx).await?;
//! assert!(target.path().join("restored/github.com/acme/app.git/HEAD").is_file());
//! # Ok(()) }
//! ```
//!
//! ## Archive format
//!
//! Each volume is stored as artifacts `<volume>/part-0000.tar.zst`,
//! `part-0001.tar.zst`, ...: plain tar streams (GNU headers: long names and
//! link targets, sizes over 8 GiB, numeric uid/gid, mode, mtime; symlinks and
//! hard links as links; empty directories), compressed with zstd and
//! checksummed by the repository. A part restores by hand with
//! `zstd -d < part-0000.tar.zst | tar -x`.
//!
//! The volume is split by subtrees: the top-level entries, bin-packed in name
//! order up to [`VolumeOptions::part_size`] (a directory larger than that is
//! split into its children, so `github.com/<org>/<repo>` trees spread over
//! parts). Parts are archived and restored [`VolumeOptions::concurrency`] at a
//! time; a damaged part loses only its own subtrees. Hard links are kept
//! within a part; a link whose other name falls into another part is stored as
//! a second copy.
//!
//! The store's section of the manifest holds its [`VolumeDetails`] (counts, parts, the
//! paths below), versioned by their `format` ([`DETAILS_FORMAT`]; details written before it
//! was recorded read as 1). A restore reads them back first and refuses a newer format, naming
//! the volume, before it touches the target.
//!
//! Files that change while read (size or mtime differs afterwards), vanish
//! between listing and reading, and skipped sockets, FIFOs and device files
//! are counted in the manifest details (with the first 20 paths) and become
//! warnings; [`VolumeOptions::strict`] makes changes an error.
//!
//! ## Restoring safely
//!
//! Restores go into an empty directory unless [`VolumeOptions::overwrite`] is
//! set. Every entry is checked before it is written: absolute paths, `..`
//! components, device nodes and FIFOs are refused; no write goes through a
//! symlink (each parent component must be a real directory, checked with
//! `lstat`); hard-link targets must be files already restored inside the root.
//! Symlinks are recreated verbatim, even when they point outside, because they
//! are never followed while restoring. Modes (including setgid directories),
//! mtimes, hard links and, when running as root, numeric ownership are
//! restored. Each artifact is read to its end so that its size and SHA-256 are
//! checked; a truncated or corrupt artifact fails with its name.
//!
//! ## Incremental backups (design, not built yet)
//!
//! A second backup of an unchanged gitserver volume should not upload it
//! again. Content-addressed chunking, as restic does it, fits the repository
//! format without changing the manifest's meaning:
//!
//! - **Chunks.** File contents are cut with content-defined chunking (a
//!   rolling hash such as FastCDC, 512 KiB–8 MiB chunks, so an insertion only
//!   changes the chunks around it), each chunk compressed with zstd and stored
//!   once under the repository-wide prefix `chunks/<sha256 of the plain
//!   chunk>` (fan-out `chunks/ab/abcdef...` keeps listings small). Chunks are
//!   shared by every backup; an exporter checks existence (`head`, or a local
//!   cache of known ids loaded from previous indexes) before uploading.
//! - **Per-volume index artifact.** Instead of `part-NNNN.tar.zst`, the
//!   volume writes `<volume>/index-NNNN.jsonl.zst`: one line per entry with
//!   path, type, mode, uid/gid, mtime, size, link target, and for files the
//!   ordered chunk ids. It is an ordinary artifact, so the manifest checksums
//!   it and `verify` covers it. The manifest details record a new `format`
//!   (so that older releases refuse the backup, naming the volume, instead of
//!   finding no tar parts) and the chunk count and bytes that were new.
//! - **Unchanged files** (same path, size, mtime, inode as in the previous
//!   backup's index) reuse the previous chunk list without reading the file,
//!   which is what makes restic's second run fast.
//! - **Restore** reads the index, fetches each chunk (verifying its SHA-256
//!   against its name) and writes files with the same safety rules as the tar
//!   path.
//! - **Deletion** becomes garbage collection: a chunk may be deleted only when
//!   no committed manifest's index references it; `delete_backup` deletes the
//!   manifest first (as now), and a separate `prune` lists the live indexes and
//!   removes unreferenced chunks older than the oldest running backup.
//!
//! The tar format stays the default for one-off migrations, where every byte
//! must be read anyway and a plain `tar -x` recovery path is worth having.

mod error;
mod export;
mod extract;
mod preset;
mod report;
mod split;
mod store;

pub use error::VolumeError;
pub use export::{ReadHook, ReadStage};
pub use preset::{VolumePreset, COMPOSE_PROJECT, DOCKER_VOLUMES_ROOT};
pub use report::{PartStats, PathSample, VolumeDetails, VolumeImportDetails, DETAILS_FORMAT, LISTED_PATHS};
pub use store::{VolumeOptions, VolumeStore, DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, TAR_CONTENT_TYPE};
