//! The volumes crate's error type: every variant names the volume, path,
//! archive entry or artifact it is about.

use std::path::PathBuf;

use sourcegraph_backup_core::{CoreError, StoreError, StoreErrorKind};

/// What can go wrong while archiving or restoring a volume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// The volume directory is missing or not a directory.
    #[error("volume {volume}: {path} is not a directory")]
    NotADirectory {
        /// The volume id.
        volume: String,
        /// The directory given for it.
        path: PathBuf,
    },
    /// Reading or writing a path of the volume failed.
    #[error("volume {volume}: I/O error on {path}")]
    Io {
        /// The volume id.
        volume: String,
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Strict mode: files changed or vanished while they were archived.
    #[error(
        "volume {volume}: {count} file(s) changed or vanished while archived (strict mode), first: {first:?}"
    )]
    Unstable {
        /// The volume id.
        volume: String,
        /// How many files changed or vanished.
        count: u64,
        /// The first few paths.
        first: Vec<String>,
    },
    /// The restore target holds files and overwriting was not asked for.
    #[error(
        "volume {volume}: restore target {path} is not empty; refusing to restore into it without overwriting (command line: `--clean`; library: `VolumeStore::overwrite`)"
    )]
    TargetNotEmpty {
        /// The volume id.
        volume: String,
        /// The target directory.
        path: PathBuf,
    },
    /// The backup holds no archive of this volume.
    #[error("volume {volume}: the backup holds no part-*.tar artifacts for it")]
    NoParts {
        /// The volume id.
        volume: String,
    },
    /// An archive entry was refused because restoring it would be unsafe.
    #[error("artifact {artifact}: entry {entry:?} rejected: {reason}")]
    UnsafeEntry {
        /// The artifact path inside the backup.
        artifact: String,
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// Restoring an entry failed on the target filesystem.
    #[error("artifact {artifact}: cannot restore entry {entry:?}")]
    Extract {
        /// The artifact path inside the backup.
        artifact: String,
        /// The entry's path as stored in the archive.
        entry: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An artifact failed verification or could not be fetched.
    #[error("artifact {artifact} cannot be restored: {source}")]
    Artifact {
        /// The artifact path inside the backup.
        artifact: String,
        /// What the repository found (size or checksum mismatch, missing, ...).
        #[source]
        source: Box<CoreError>,
    },
    /// An artifact verified but is not a readable tar archive.
    #[error("artifact {artifact} is not a valid volume archive: {reason}")]
    BadArchive {
        /// The artifact path inside the backup.
        artifact: String,
        /// What the tar reader said.
        reason: String,
    },
    /// Some parts of a volume failed; the others were processed.
    #[error("volume {volume}: {} of {total} part(s) failed; first: {}", .failures.len(), .failures.first().map(ToString::to_string).unwrap_or_default())]
    Parts {
        /// The volume id.
        volume: String,
        /// How many parts there were.
        total: usize,
        /// Each failure.
        failures: Vec<VolumeError>,
    },
    /// The backup's details of this volume have a format this release cannot read.
    #[error(
        "volume {volume}: the backup records its details in format {found}, written by a newer release: upgrade sourcegraph-backup (this release reads format {supported} and older)"
    )]
    NewerFormat {
        /// The volume id.
        volume: String,
        /// The format found in the manifest.
        found: u32,
        /// The newest format this release reads.
        supported: u32,
    },
    /// The backup's details of this volume cannot be read.
    #[error("volume {volume}: the backup's details of this volume are malformed: {reason}")]
    MalformedDetails {
        /// The volume id.
        volume: String,
        /// What the JSON reader said.
        reason: String,
    },
    /// The details of a report could not be serialised.
    #[error("volume {volume}: cannot serialise the {what}: {reason}")]
    Serialize {
        /// The volume id.
        volume: String,
        /// What was serialised (`manifest details`, `import report`).
        what: &'static str,
        /// What the JSON writer said.
        reason: String,
    },
    /// A `name=path` volume mapping could not be parsed, or a name is unknown.
    #[error("volume mapping {spec:?}: {reason}")]
    Mapping {
        /// The mapping as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A repository operation failed.
    #[error("volume {volume}: backup repository error")]
    Core {
        /// The volume id.
        volume: String,
        /// The core error.
        #[source]
        source: Box<CoreError>,
    },
    /// A worker task panicked or was cancelled.
    #[error("volume {volume}: worker task failed: {reason}")]
    Task {
        /// The volume id.
        volume: String,
        /// The join error's text.
        reason: String,
    },
}

impl VolumeError {
    /// What a caller can do about this error.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            VolumeError::TargetNotEmpty { .. } => StoreErrorKind::TargetNotEmpty,
            VolumeError::NotADirectory { .. } => StoreErrorKind::Unreachable,
            VolumeError::UnsafeEntry { .. }
            | VolumeError::BadArchive { .. }
            | VolumeError::NoParts { .. }
            | VolumeError::NewerFormat { .. }
            | VolumeError::MalformedDetails { .. } => StoreErrorKind::CorruptBackup,
            VolumeError::Artifact { source, .. } | VolumeError::Core { source, .. } => source.kind(),
            VolumeError::Parts { failures, .. } => {
                failures.first().map_or(StoreErrorKind::Other, VolumeError::kind)
            }
            _ => StoreErrorKind::Other,
        }
    }
}

impl From<VolumeError> for StoreError {
    fn from(e: VolumeError) -> Self {
        StoreError::new(e.kind(), e)
    }
}
