//! The backup manifest: the one file that says a backup is complete and what
//! it holds. It is written last; its presence marks a backup restorable.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::{BackupOption, CatalogId, StoreKind};
use crate::plan::Plan;

/// The manifest format this library writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The file name of the manifest inside a backup prefix.
pub const MANIFEST_FILE: &str = "manifest.json";

/// How an artifact's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "codec")]
pub enum Compression {
    /// Stored as written.
    None,
    /// zstd frames at the given level (restore by hand with `zstd -d`).
    Zstd {
        /// The compression level used.
        level: i32,
    },
}

impl Compression {
    /// zstd at level 1: about 770 MB/s per core, smaller than gzip.
    pub const DEFAULT_ZSTD: Compression = Compression::Zstd { level: 1 };

    /// The file name suffix conventionally used for this compression.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Zstd { .. } => ".zst",
        }
    }
}

/// One artifact as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Path relative to the backup prefix: `<store>/<name>`.
    pub path: String,
    /// Stored size in bytes.
    pub size: u64,
    /// SHA-256 of the stored bytes, lower-case hex (what `sha256sum` prints).
    pub sha256: String,
    /// Media type of the uncompressed content, e.g. `application/sql`.
    pub content_type: String,
    /// Compression of the stored bytes.
    pub compression: Compression,
    /// Bytes before compression.
    pub uncompressed_size: u64,
}

impl ArtifactRecord {
    /// The artifact's name inside its store (the path without the store prefix).
    pub fn name(&self) -> &str {
        self.path.split_once('/').map_or(self.path.as_str(), |(_, n)| n)
    }

    /// The store id the artifact belongs to.
    pub fn store(&self) -> &str {
        self.path.split_once('/').map_or("", |(s, _)| s)
    }
}

/// What a store's exporter found about the source and wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreManifest {
    /// The store id (`pgsql`, `config`, `gitserver-0`, ...).
    pub id: String,
    /// Which kind of store wrote it.
    pub kind: StoreKind,
    /// The catalog rows or deployment volume it carries.
    #[serde(default)]
    pub catalog: Vec<CatalogId>,
    /// Every artifact, in the order they were committed.
    pub artifacts: Vec<ArtifactRecord>,
    /// Store-specific facts (probe report, table list, file counts, ...).
    #[serde(default)]
    pub details: serde_json::Value,
    /// Conditions a restorer should know (e.g. files changed while read).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl StoreManifest {
    /// Looks an artifact up by name inside the store.
    pub fn artifact(&self, name: &str) -> Option<&ArtifactRecord> {
        self.artifacts.iter().find(|a| a.name() == name)
    }

    /// Total stored bytes of the store's artifacts.
    pub fn stored_bytes(&self) -> u64 {
        self.artifacts.iter().map(|a| a.size).sum()
    }
}

/// What was found about the source instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The Sourcegraph product version, where a store could tell.
    pub sourcegraph_version: Option<String>,
    /// Schema (migration) versions per store, e.g. `pgsql` → `1769217467`.
    #[serde(default)]
    pub schema_versions: BTreeMap<String, String>,
}

/// The manifest of one committed backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// The manifest format version.
    pub format_version: u32,
    /// The backup id (sorts by time).
    pub backup_id: String,
    /// When the backup was started.
    pub created_at: DateTime<Utc>,
    /// When the manifest was committed.
    pub completed_at: DateTime<Utc>,
    /// The version of the library that wrote it.
    pub library_version: String,
    /// The option chosen.
    pub option: BackupOption,
    /// What was found about the source.
    pub source: SourceInfo,
    /// What was included and skipped, and why.
    pub plan: Option<Plan>,
    /// Every store with its artifacts.
    pub stores: Vec<StoreManifest>,
    /// Backup-wide warnings (a store finished with conditions).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// How every artifact is encrypted at rest (public facts only: the scheme, the
    /// recipients' public keys, whether a passphrase is used); absent when stored as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::repository::EncryptionInfo>,
}

impl BackupManifest {
    /// Parses and validates a manifest: malformed JSON and format versions
    /// from the future are clear errors.
    pub fn from_json(backup: &str, bytes: &[u8]) -> Result<Self, CoreError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| CoreError::MalformedManifest {
                backup: backup.into(),
                reason: e.to_string(),
            })?;
        let found = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| CoreError::MalformedManifest {
                backup: backup.into(),
                reason: "format_version is missing or not a number".into(),
            })?;
        let found = u32::try_from(found).unwrap_or(u32::MAX);
        if found > FORMAT_VERSION || found == 0 {
            return Err(CoreError::UnsupportedFormat {
                backup: backup.into(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        let manifest: BackupManifest =
            serde_json::from_value(value).map_err(|e| CoreError::MalformedManifest {
                backup: backup.into(),
                reason: e.to_string(),
            })?;
        if manifest.backup_id != backup {
            return Err(CoreError::MalformedManifest {
                backup: backup.into(),
                reason: format!("it names backup {:?}", manifest.backup_id),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut store_ids = std::collections::BTreeSet::new();
        for store in &manifest.stores {
            if store.id.is_empty()
                || store.id.contains('/')
                || crate::repository::validate_relative_path(&store.id).is_err()
            {
                return Err(CoreError::MalformedManifest {
                    backup: backup.into(),
                    reason: format!("store id {:?} is empty or not a single path segment", store.id),
                });
            }
            if !store_ids.insert(store.id.as_str()) {
                return Err(CoreError::MalformedManifest {
                    backup: backup.into(),
                    reason: format!("store {} is listed twice", store.id),
                });
            }
            for a in &store.artifacts {
                if a.store() != store.id || !seen.insert(a.path.as_str()) {
                    return Err(CoreError::MalformedManifest {
                        backup: backup.into(),
                        reason: format!("artifact {} is listed under store {} or twice", a.path, store.id),
                    });
                }
                // Encryption adds a header and tags: only a plain artifact's sizes must agree.
                if a.compression == Compression::None
                    && manifest.encryption.is_none()
                    && a.size != a.uncompressed_size
                {
                    return Err(CoreError::MalformedManifest {
                        backup: backup.into(),
                        reason: format!(
                            "artifact {} is stored uncompressed but records {} stored and {} \
                             uncompressed bytes",
                            a.path, a.size, a.uncompressed_size
                        ),
                    });
                }
                crate::repository::validate_relative_path(&a.path).map_err(|reason| {
                    CoreError::MalformedManifest {
                        backup: backup.into(),
                        reason,
                    }
                })?;
            }
        }
        Ok(manifest)
    }

    /// The manifest of a store, by id.
    pub fn store(&self, id: &str) -> Option<&StoreManifest> {
        self.stores.iter().find(|s| s.id == id)
    }

    /// Total stored bytes of every artifact.
    pub fn stored_bytes(&self) -> u64 {
        self.stores.iter().map(StoreManifest::stored_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catalog rows are typed, and read and written as the plain strings they always were.
    #[test]
    fn catalog_ids_stay_plain_strings() -> Result<(), serde_json::Error> {
        let json = serde_json::json!({
            "id": "config",
            "kind": "config",
            "catalog": ["site-configuration", "global-settings"],
            "artifacts": [],
            "details": null,
            "warnings": [],
        });
        let store: StoreManifest = serde_json::from_value(json.clone())?;
        assert_eq!(
            store.catalog,
            [
                CatalogId::from("site-configuration"),
                CatalogId::from("global-settings")
            ]
        );
        assert_eq!(serde_json::to_value(&store)?, json);
        Ok(())
    }

    /// Found by fuzzing: a store with an empty id passed with an artifact path outside any
    /// store directory (`manifest.json` itself).
    #[test]
    fn a_store_id_must_be_one_path_segment() {
        for id in ["", "a/b", ".."] {
            let json = serde_json::json!({
                "format_version": FORMAT_VERSION,
                "backup_id": "b1",
                "created_at": "2026-11-29T00:00:00Z",
                "completed_at": "2026-11-29T00:00:00Z",
                "library_version": "0",
                "option": "config-only",
                "source": {},
                "plan": null,
                "stores": [{"id": id, "kind": "config", "artifacts": [{
                    "path": "manifest.json", "size": 1, "sha256": "00", "content_type": "x",
                    "compression": {"codec": "none"}, "uncompressed_size": 1}]}],
            });
            let bytes = serde_json::to_vec(&json).unwrap_or_default();
            let err = match BackupManifest::from_json("b1", &bytes) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{id:?}: a store id that is not one path segment was accepted"),
            };
            assert!(err.contains("store id"), "{id:?}: {err}");
        }
    }
}
