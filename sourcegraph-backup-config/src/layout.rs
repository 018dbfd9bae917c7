//! How a snapshot is laid out in a backup, and the manifest details that describe it.
//!
//! ```text
//! config/site.jsonc                          byte-exact documents (the restore source)
//! config/global-settings.jsonc
//! config/code-hosts/<id>-<slug>.jsonc        (.encrypted when carried as ciphertext)
//! config/ui/...                              the same bytes, to paste into the web UI
//! config/files/site-config.json              the files Sourcegraph loads at start-up
//! config/files/global-settings.json
//! config/files/extsvc-config.json
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::keys::EncryptionKeyRef;
use crate::model::{slug, ConfigDocument, ConfigSnapshot, DocumentKind, EncryptedValue, Provenance};

/// The layout version of [`ConfigDetails`] this release writes, and the newest it reads.
pub const DETAILS_FORMAT: u32 = 1;

/// The format of details written before `format` was (they recorded it as `version`, always 1).
fn unversioned_format() -> u32 {
    1
}

/// One document as listed in the manifest details (no text, no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEntry {
    /// The artifact holding the byte-exact text (or ciphertext).
    pub artifact: String,
    /// The paste-into-the-UI copy, when there is one.
    pub ui_artifact: Option<String>,
    /// Human name of the document.
    pub name: String,
    /// What it is.
    pub document: DocumentKind,
    /// sha256 of the text.
    pub sha256: String,
    /// Length of the text in bytes.
    pub bytes: usize,
    /// Where it came from.
    pub provenance: Provenance,
    /// Set when the text is ciphertext.
    pub encryption: Option<EncryptedValue>,
}

/// The configuration store's section of the manifest. Read it back with
/// [`ConfigDetails::from_manifest`], which checks the format first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDetails {
    /// The layout version ([`DETAILS_FORMAT`]). Details written before it was called `format`
    /// hold it as `version`, read alike; without either, it reads as 1.
    #[serde(default = "unversioned_format", alias = "version")]
    pub format: u32,
    /// Where the snapshot was taken (no password).
    pub source: String,
    /// Every document.
    pub documents: Vec<DocumentEntry>,
    /// Names of the connections carried as ciphertext.
    pub encrypted_documents: Vec<String>,
    /// The key material a new instance needs (from `encryption.keys`): names, never keys.
    pub encryption_keys: Vec<EncryptionKeyRef>,
    /// The start-up files written under `files/` (artifact names).
    pub files: Vec<String>,
    /// The original `EXTSVC_CONFIG_FILE` is kept verbatim as `files/extsvc-config.json`.
    pub extsvc_file_verbatim: bool,
}

impl ConfigDetails {
    /// Reads the details of store `store` back from its manifest section. The format is
    /// checked before anything else is read: a newer one (written by a newer release) is
    /// refused with [`ConfigError::NewerFormat`], naming the store.
    pub fn from_manifest(store: &str, details: &serde_json::Value) -> Result<Self, ConfigError> {
        /// Only the format, so that a newer layout is refused rather than misread.
        #[derive(Deserialize)]
        struct Format {
            #[serde(default = "unversioned_format", alias = "version")]
            format: u32,
        }
        // Details that are not even an object fail below, as before formats were checked.
        if let Ok(Format { format }) = Format::deserialize(details) {
            if format > DETAILS_FORMAT {
                return Err(ConfigError::NewerFormat {
                    store: store.to_owned(),
                    found: format,
                    supported: DETAILS_FORMAT,
                });
            }
        }
        ConfigDetails::deserialize(details).map_err(|e| ConfigError::Manifest {
            reason: e.to_string(),
        })
    }
}

/// Assigns each document its artifact names: `(artifact, ui_artifact)`, in document order.
pub(crate) fn artifact_names(snapshot: &ConfigSnapshot) -> Vec<(String, Option<String>)> {
    let sites = snapshot.site_configurations().count();
    let mut site_n = 0;
    let mut used = BTreeSet::new();
    let mut host_n = 0;
    snapshot
        .documents
        .iter()
        .map(|d| {
            let base = match &d.kind {
                DocumentKind::SiteConfiguration => {
                    site_n += 1;
                    if sites == 1 {
                        "site".to_owned()
                    } else {
                        format!("site-{site_n}")
                    }
                }
                DocumentKind::GlobalSettings => "global-settings".to_owned(),
                DocumentKind::CodeHostConnection { display_name, id, .. } => {
                    host_n += 1;
                    let n = id.unwrap_or(host_n);
                    format!("code-hosts/{n}-{}", slug(display_name))
                }
            };
            let mut name = base.clone();
            let mut k = 2;
            while !used.insert(name.clone()) {
                name = format!("{base}-{k}");
                k += 1;
            }
            if d.is_encrypted() {
                (format!("{name}.encrypted"), None)
            } else {
                let ui = match &d.kind {
                    DocumentKind::SiteConfiguration => name.replacen("site", "ui/site-configuration", 1),
                    _ => format!("ui/{name}"),
                };
                (format!("{name}.jsonc"), Some(format!("{ui}.jsonc")))
            }
        })
        .collect()
}

/// The details entry of a document.
pub(crate) fn entry(d: &ConfigDocument, artifact: String, ui_artifact: Option<String>) -> DocumentEntry {
    DocumentEntry {
        artifact,
        ui_artifact,
        name: d.name(),
        document: d.kind.clone(),
        sha256: d.sha256(),
        bytes: d.text.len(),
        provenance: d.provenance.clone(),
        encryption: d.encryption.clone(),
    }
}

/// Where to paste each file, written as `ui/README.txt`.
pub(crate) const UI_README: &str = "These files hold the configuration texts byte for byte, to paste into the web UI of the new instance:\n\
- site-configuration.jsonc: Site admin > Configuration (replace the whole editor content, then save)\n\
- global-settings.jsonc: Site admin > Global settings\n\
- code-hosts/<id>-<name>.jsonc: Site admin > Code host connections > Add (choose the same kind), one per connection\n\
They contain secrets (tokens, passwords): keep them private.\n\
Alternatively, ../files/ holds site-config.json, global-settings.json and extsvc-config.json for SITE_CONFIG_FILE,\n\
GLOBAL_SETTINGS_FILE and EXTSVC_CONFIG_FILE. Warning: an instance started with EXTSVC_CONFIG_FILE deletes every\n\
code host connection in its database that the file lacks.\n";
