//! Leases: a running backup says so, so that `clean` never deletes it.
//!
//! A backup writes `<backup-id>/lease.json` before its first artifact and renews it every
//! third of the lease duration until it commits or aborts; the lease names the process and
//! when it expires. An incomplete backup whose lease is missing or expired is abandoned and
//! may be cleaned. Clocks of writer and cleaner are compared, so the duration (five minutes
//! by default) is far longer than any clock skew a host should have.

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// The lease object inside a backup prefix.
pub const LEASE_FILE: &str = "lease.json";

/// How long a lease lasts without renewal, unless the repository says otherwise.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(300);

/// What a running backup writes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The backup id.
    pub backup_id: String,
    /// The host name of the writer, where known.
    pub host: String,
    /// The writer's process id.
    pub pid: u32,
    /// When it was last renewed.
    pub renewed_at: DateTime<Utc>,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Whether the lease is still held at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Writes (or renews) the lease.
pub(super) async fn put(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    backup_id: &str,
    duration: Duration,
) -> Result<(), CoreError> {
    let now = Utc::now();
    let lease = Lease {
        backup_id: backup_id.to_string(),
        host: host_name(),
        pid: std::process::id(),
        renewed_at: now,
        expires_at: now + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX),
    };
    let json = serde_json::to_vec_pretty(&lease)?;
    store
        .put(path, PutPayload::from(json))
        .await
        .map(|_| ())
        .map_err(|e| CoreError::store("put", path.to_string(), e))
}

/// Reads a lease; `None` when there is none or it cannot be parsed (a torn write counts as no
/// lease: the renewal that tore it would have replaced it).
pub(super) async fn get(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<Option<Lease>, CoreError> {
    match store.get(path).await {
        Ok(r) if r.meta.size > 64 * 1024 => Ok(None),
        Ok(r) => {
            let bytes = r
                .bytes()
                .await
                .map_err(|e| CoreError::store("get", path.to_string(), e))?;
            Ok(serde_json::from_slice(&bytes).ok())
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(CoreError::store("get", path.to_string(), e)),
    }
}

/// Renews the lease until `owner` is gone (every writer clone dropped) or `stop` fires.
pub(super) fn spawn_renewal<T: Send + Sync + 'static>(
    owner: Weak<T>,
    store: Arc<dyn ObjectStore>,
    path: Path,
    backup_id: String,
    duration: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let every = duration / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() || owner.strong_count() == 0 {
                return;
            }
            // A failed renewal is retried at the next tick; the lease lasts three ticks.
            let _ = put(&store, &path, &backup_id, duration).await;
        }
    });
}
