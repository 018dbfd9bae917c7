//! The backup repository: backups as prefixes of an [`ObjectStore`], each
//! holding artifacts and one `manifest.json` written last (restic's lesson).
//!
//! ```text
//! <prefix>/<backup-id>/manifest.json              committed last; its presence = complete
//! <prefix>/<backup-id>/<store-id>/<artifact-name> streamed in, size and sha256 on the fly
//! <prefix>/<backup-id>/passphrase-key.age         encrypted with a passphrase only
//! ```
//!
//! Artifacts can be encrypted at rest with age ([`encryption`]): see
//! [`BackupRepository::start_backup_with`] and [`BackupRepository::with_decryption`].

pub mod encryption;
mod lease;
mod location;
mod private;
mod reader;
pub mod retention;
mod verify;
mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use crate::error::CoreError;
use crate::manifest::{BackupManifest, MANIFEST_FILE};
use crate::model::{BackupOption, StoreKind};

pub use encryption::{Decryption, Encryption, EncryptionInfo};
pub use lease::{Lease, DEFAULT_LEASE_DURATION, LEASE_FILE};
pub use private::make_file_private;
pub use reader::{ArtifactReader, BackupReader, SMALL_ARTIFACT_LIMIT};
pub use retention::{
    forget, ForgetReport, KeepReason, KeptBackup, RemovedBackup, RetentionPolicy, UntouchedBackup,
    UntouchedState,
};
pub use verify::{ArtifactProblem, VerifyReport};
pub use writer::{ArtifactOptions, ArtifactWriter, BackupWriter, BlockingArtifactWriter, StoreSection};

/// Size of one multipart part: the S3 minimum is 5 MiB; parts are uploaded
/// two at a time, so an artifact in flight holds at most a few parts.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// The largest manifest read: about 200,000 artifact records (one is about 300 bytes); the
/// largest Sourcegraph backups hold tens of thousands.
const MANIFEST_LIMIT: u64 = 64 * 1024 * 1024;

/// How [`BackupRepository::open_with`] opens a repository.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// How cloud requests are retried: server errors (5xx, 429), connection failures and,
    /// for idempotent requests, timeouts are retried with exponential backoff. The default
    /// is object_store's: up to 10 retries within 3 minutes, backoff from 100 ms doubling to
    /// 15 s. Local and in-memory repositories do not retry.
    #[cfg(feature = "cloud")]
    pub retry: object_store::RetryConfig,
}

impl OpenOptions {
    /// Sets the retry policy of cloud requests.
    #[cfg(feature = "cloud")]
    pub fn retry(mut self, retry: object_store::RetryConfig) -> Self {
        self.retry = retry;
        self
    }
}

/// A place holding backups: a prefix in an object store.
#[derive(Clone)]
pub struct BackupRepository {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    /// The directory of a local repository (files and directories made private, artifacts
    /// checked not to lead outside it).
    local_root: Option<std::path::PathBuf>,
    /// How long a running backup's lease lasts without renewal.
    lease_duration: std::time::Duration,
    /// The keys that open encrypted backups.
    decryption: Option<Arc<Decryption>>,
}

/// How [`BackupRepository::start_backup_with`] writes a backup.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Encrypts every artifact with age; `None` stores them as they are.
    pub encryption: Option<Encryption>,
}

impl BackupOptions {
    /// Encrypts every artifact.
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }
}

impl std::fmt::Debug for BackupRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupRepository")
            .field("location", &self.location)
            .finish()
    }
}

/// A complete backup as `list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupSummary {
    /// The backup id.
    pub id: String,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// The option chosen.
    pub option: BackupOption,
    /// Total stored bytes.
    pub stored_bytes: u64,
    /// The stores it holds.
    pub stores: Vec<(String, StoreKind)>,
    /// Whether the backup recorded warnings.
    pub has_warnings: bool,
}

/// The state of a backup prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub enum BackupState {
    /// Committed: the manifest is present and valid.
    Complete(BackupSummary),
    /// No manifest: in progress (its lease lives) or abandoned (interrupted or failed; `clean`
    /// removes it).
    Incomplete {
        /// The backup id.
        id: String,
        /// When its newest object was written.
        last_modified: Option<DateTime<Utc>>,
        /// The lease of the backup writing it, if one is recorded.
        lease: Option<Lease>,
    },
    /// A manifest exists but cannot be read.
    Unreadable {
        /// The backup id.
        id: String,
        /// Why.
        reason: String,
    },
}

impl BackupRepository {
    /// Opens a repository from a local path or a URL: `file:///path`,
    /// `memory://`, `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix`. Cloud credentials come from the environment
    /// the way `object_store` reads them (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn open(location: &str) -> Result<Self, CoreError> {
        location::open(location, &OpenOptions::default())
    }

    /// [`open`](Self::open) with options: the retry policy of cloud requests.
    pub fn open_with(location: &str, options: &OpenOptions) -> Result<Self, CoreError> {
        location::open(location, options)
    }

    /// A repository in a local directory (created if missing); no URL needed.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self, CoreError> {
        location::local(dir.as_ref())
    }

    /// A repository in memory (tests).
    pub fn in_memory() -> Self {
        Self::from_store(
            Arc::new(object_store::memory::InMemory::new()),
            Path::default(),
            "memory://",
        )
    }

    /// A repository on any object store under `prefix`.
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: Path, location: impl Into<String>) -> Self {
        BackupRepository {
            store,
            prefix,
            location: location.into(),
            local_root: None,
            lease_duration: DEFAULT_LEASE_DURATION,
            decryption: None,
        }
    }

    /// Sets how long a running backup's lease lasts without renewal (renewed every third of
    /// it): `clean` leaves an incomplete backup alone while its lease lives.
    pub fn with_lease_duration(mut self, duration: std::time::Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// Gives the keys that open encrypted backups: [`open_backup`](Self::open_backup) of an
    /// encrypted backup checks them before it returns. Unencrypted backups ignore them.
    pub fn with_decryption(mut self, decryption: Decryption) -> Self {
        self.decryption = Some(Arc::new(decryption));
        self
    }

    /// The directory of a local repository, `None` for object stores.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The location, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub(crate) fn backup_prefix(&self, id: &str) -> Path {
        self.prefix.clone().join(id)
    }

    pub(crate) fn object_path(&self, id: &str, relative: &str) -> Path {
        relative
            .split('/')
            .fold(self.backup_prefix(id), |p, part| p.join(part))
    }

    /// Starts a new backup; nothing is visible as complete until
    /// [`BackupWriter::commit`].
    pub fn start_backup(&self, option: BackupOption) -> BackupWriter {
        self.new_backup(option, None)
    }

    /// [`start_backup`](Self::start_backup) with options: encryption at rest. Fails when the
    /// encryption has neither a recipient nor a passphrase.
    pub fn start_backup_with(
        &self,
        option: BackupOption,
        options: &BackupOptions,
    ) -> Result<BackupWriter, CoreError> {
        let keys = match &options.encryption {
            Some(e) => Some(
                encryption::WriterKeys::new(e).map_err(|reason| CoreError::Location {
                    location: self.location.clone(),
                    reason,
                })?,
            ),
            None => None,
        };
        Ok(self.new_backup(option, keys))
    }

    fn new_backup(&self, option: BackupOption, keys: Option<encryption::WriterKeys>) -> BackupWriter {
        let created_at = Utc::now();
        // Milliseconds keep ids in time order for backups started in the same second.
        let id = format!(
            "{}-{:04x}",
            created_at.format("%Y%m%dT%H%M%S%.3fZ"),
            rand::random::<u16>()
        );
        BackupWriter::new(self.clone(), id, created_at, option, keys.map(Arc::new))
    }

    /// Every backup prefix with its state, newest first.
    pub async fn list_all(&self) -> Result<Vec<BackupState>, CoreError> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| CoreError::store("list", self.prefix.to_string(), e))?;
        let mut ids: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|id| valid_backup_id(id))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(match self.read_manifest(&id).await {
                Ok(m) => BackupState::Complete(summary(&m)),
                Err(CoreError::Incomplete { .. }) => {
                    let lease = lease::get(&self.store, &self.object_path(&id, LEASE_FILE)).await?;
                    let last_modified = self.last_modified(&id).await?;
                    BackupState::Incomplete {
                        id,
                        last_modified,
                        lease,
                    }
                }
                // Whatever keeps a manifest from being read (malformed, from a newer release,
                // unreadable file) is reported against that backup, not the whole listing.
                Err(e) => BackupState::Unreadable {
                    id,
                    reason: e.to_string(),
                },
            });
        }
        // Newest first by start time; the id breaks ties.
        out.sort_by(|a, b| sort_key(b).cmp(&sort_key(a)));
        Ok(out)
    }

    /// Complete backups only, newest first.
    pub async fn list(&self) -> Result<Vec<BackupSummary>, CoreError> {
        Ok(self
            .list_all()
            .await?
            .into_iter()
            .filter_map(|s| match s {
                BackupState::Complete(summary) => Some(summary),
                _ => None,
            })
            .collect())
    }

    /// Ids of backups that were never committed (running ones included).
    pub async fn list_incomplete(&self) -> Result<Vec<String>, CoreError> {
        Ok(self
            .list_all()
            .await?
            .into_iter()
            .filter_map(|s| match s {
                BackupState::Incomplete { id, .. } => Some(id),
                _ => None,
            })
            .collect())
    }

    /// Deletes every incomplete backup that no running backup owns (no live lease) and
    /// returns their ids; running ones are left alone.
    pub async fn clean_incomplete(&self) -> Result<Vec<String>, CoreError> {
        let now = Utc::now();
        let mut removed = Vec::new();
        for state in self.list_all().await? {
            if let BackupState::Incomplete { id, lease, .. } = state {
                if lease.is_some_and(|l| l.is_live(now)) {
                    continue;
                }
                self.delete_incomplete(&id).await?;
                removed.push(id);
            }
        }
        Ok(removed)
    }

    /// Deletes every object of a backup that has no manifest; in a local repository also the
    /// partial files an interrupted upload leaves, which object listings do not show.
    pub(crate) async fn delete_incomplete(&self, id: &str) -> Result<(), CoreError> {
        check_backup_id(id, self)?;
        self.delete_objects(id).await?;
        if let Some(root) = &self.local_root {
            let dir = root.join(id);
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CoreError::Codec {
                        operation: "removal",
                        path: dir.display().to_string(),
                        source: e,
                    })
                }
            }
        }
        Ok(())
    }

    /// When the newest object of a backup was written.
    async fn last_modified(&self, id: &str) -> Result<Option<DateTime<Utc>>, CoreError> {
        let prefix = self.backup_prefix(id);
        self.store
            .list(Some(&prefix))
            .try_fold(None, |newest: Option<DateTime<Utc>>, m| async move {
                Ok(Some(newest.map_or(m.last_modified, |n| n.max(m.last_modified))))
            })
            .await
            .map_err(|e| CoreError::store("list", prefix.to_string(), e))
    }

    /// Deletes a backup: the manifest first, so it stops being restorable
    /// before any artifact goes.
    pub async fn delete_backup(&self, id: &str) -> Result<(), CoreError> {
        check_backup_id(id, self)?;
        let manifest = self.object_path(id, MANIFEST_FILE);
        match self.store.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(CoreError::store("delete", manifest.to_string(), e)),
        }
        self.delete_objects(id).await
    }

    async fn delete_objects(&self, id: &str) -> Result<(), CoreError> {
        let prefix = self.backup_prefix(id);
        let paths: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| CoreError::store("list", prefix.to_string(), e))?;
        for p in paths {
            match self.store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(CoreError::store("delete", p.to_string(), e)),
            }
        }
        Ok(())
    }

    pub(crate) async fn read_manifest(&self, id: &str) -> Result<BackupManifest, CoreError> {
        check_backup_id(id, self)?;
        let path = self.object_path(id, MANIFEST_FILE);
        let bytes = match self.store.get(&path).await {
            Ok(r) if r.meta.size > MANIFEST_LIMIT => {
                return Err(CoreError::MalformedManifest {
                    backup: id.into(),
                    reason: format!(
                        "it is {} bytes, more than the {MANIFEST_LIMIT} bytes a manifest may have",
                        r.meta.size
                    ),
                })
            }
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| CoreError::store("get", path.to_string(), e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(CoreError::Incomplete { backup: id.into() })
            }
            Err(e) => return Err(CoreError::store("get", path.to_string(), e)),
        };
        BackupManifest::from_json(id, &bytes)
    }

    /// Opens a committed backup, validating its manifest. An encrypted backup needs its key
    /// ([`with_decryption`](Self::with_decryption)), checked here: without it, or with a wrong
    /// one, this fails ([`CoreError::Encryption`]) before anything is restored.
    pub async fn open_backup(&self, id: &str) -> Result<BackupReader, CoreError> {
        let reader = self.open_backup_without_keys(id).await?;
        let keys = encryption::unlock(self, reader.manifest()).await?;
        Ok(reader.with_keys(keys))
    }

    /// Opens a committed backup without checking or holding keys: its artifacts can be
    /// verified, not decoded.
    async fn open_backup_without_keys(&self, id: &str) -> Result<BackupReader, CoreError> {
        match self.read_manifest(id).await {
            Ok(m) => Ok(BackupReader::new(self.clone(), m)),
            Err(CoreError::Incomplete { backup }) if !self.has_objects(&backup).await? => {
                Err(CoreError::NoSuchBackup {
                    backup,
                    location: self.location.clone(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the newest complete backup. Refuses when a newer backup has a manifest that
    /// cannot be read: silently restoring an older one would restore the wrong data.
    pub async fn open_latest(&self) -> Result<BackupReader, CoreError> {
        let id = self.latest_id().await?;
        self.open_backup(&id).await
    }

    /// The id of the newest complete backup, refusing as [`open_latest`](Self::open_latest)
    /// does; needs no key.
    pub async fn latest_id(&self) -> Result<String, CoreError> {
        let states = self.list_all().await?;
        let readable = states.iter().find_map(|s| match s {
            BackupState::Complete(c) => Some(c.id.clone()),
            _ => None,
        });
        for state in &states {
            match state {
                BackupState::Complete(c) => return Ok(c.id.clone()),
                BackupState::Unreadable { id, reason } => {
                    return Err(CoreError::NewestUnreadable {
                        backup: id.clone(),
                        reason: reason.clone(),
                        newest_readable: readable,
                    })
                }
                _ => {}
            }
        }
        Err(CoreError::NoBackups {
            location: self.location.clone(),
        })
    }

    async fn has_objects(&self, id: &str) -> Result<bool, CoreError> {
        let prefix = self.backup_prefix(id);
        let first = self
            .store
            .list(Some(&prefix))
            .try_next()
            .await
            .map_err(|e| CoreError::store("list", prefix.to_string(), e))?;
        Ok(first.is_some())
    }

    /// Re-reads every artifact of a committed backup and reports each missing
    /// one and each size or SHA-256 mismatch by name. Restores nothing. Needs no key: the
    /// stored (encrypted) bytes are what is hashed.
    pub async fn verify(&self, id: &str) -> Result<VerifyReport, CoreError> {
        let reader = self.open_backup_without_keys(id).await?;
        Ok(verify::verify(&reader).await)
    }
}

fn sort_key(s: &BackupState) -> (Option<DateTime<Utc>>, &str) {
    match s {
        BackupState::Complete(c) => (Some(c.created_at), c.id.as_str()),
        BackupState::Incomplete { id, .. } | BackupState::Unreadable { id, .. } => (id_time(id), id.as_str()),
    }
}

/// The start time a generated backup id begins with (`20261126T004000.123Z-7f3a`).
fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let stamp = id.get(..19)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3f")
        .ok()
        .map(|t| t.and_utc())
}

fn summary(m: &BackupManifest) -> BackupSummary {
    BackupSummary {
        id: m.backup_id.clone(),
        created_at: m.created_at,
        option: m.option,
        stored_bytes: m.stored_bytes(),
        stores: m.stores.iter().map(|s| (s.id.clone(), s.kind)).collect(),
        has_warnings: !m.warnings.is_empty() || m.stores.iter().any(|s| !s.warnings.is_empty()),
    }
}

fn valid_backup_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}

fn check_backup_id(id: &str, repo: &BackupRepository) -> Result<(), CoreError> {
    if valid_backup_id(id) {
        Ok(())
    } else {
        Err(CoreError::NoSuchBackup {
            backup: id.into(),
            location: repo.location.clone(),
        })
    }
}

/// Checks a path relative to a backup prefix: `/`-separated, no empty, `.`
/// or `..` segments, no backslashes or control characters.
pub fn validate_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 1024 {
        return Err(format!("artifact path {path:?} is empty or too long"));
    }
    for seg in path.split('/') {
        if seg.is_empty()
            || seg == "."
            || seg == ".."
            || seg.contains('\\')
            || seg.chars().any(char::is_control)
        {
            return Err(format!("artifact path {path:?} has an invalid segment {seg:?}"));
        }
    }
    Ok(())
}
