//! The snapshot model: documents with byte-exact text and their provenance.
//!
//! `Debug` and `Display` are written by hand: a derived `Debug` on a struct holding the text would
//! print every token in it. They show kind, name, length and the text's sha256 instead.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a document is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum DocumentKind {
    /// The site configuration (`critical_and_site_config`, type `site`; `SITE_CONFIG_FILE`).
    SiteConfiguration,
    /// The global settings (`settings` with no user and no org; `GLOBAL_SETTINGS_FILE`).
    GlobalSettings,
    /// One code host connection (`external_services`; an entry of `EXTSVC_CONFIG_FILE`).
    CodeHostConnection {
        /// Sourcegraph's kind, upper case: `GITHUB`, `GITLAB`, `BITBUCKETSERVER`, `OTHER`, ...
        kind: String,
        /// The display name (`<KIND> #<n>` when it came from `EXTSVC_CONFIG_FILE`).
        display_name: String,
        /// The row id in the source database, when it came from one.
        id: Option<i64>,
    },
}

impl DocumentKind {
    /// A short label for the kind alone: `site-configuration`, `global-settings`, `code-host`.
    pub fn label(&self) -> &'static str {
        match self {
            DocumentKind::SiteConfiguration => "site-configuration",
            DocumentKind::GlobalSettings => "global-settings",
            DocumentKind::CodeHostConnection { .. } => "code-host",
        }
    }

    /// The code host kind, for code host connections.
    pub fn code_host_kind(&self) -> Option<&str> {
        match self {
            DocumentKind::CodeHostConnection { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentKind::SiteConfiguration => f.write_str("site configuration"),
            DocumentKind::GlobalSettings => f.write_str("global settings"),
            DocumentKind::CodeHostConnection {
                kind,
                display_name,
                id,
            } => {
                write!(f, "code host connection {kind} {display_name:?}")?;
                if let Some(id) = id {
                    write!(f, " (id {id})")?;
                }
                Ok(())
            }
        }
    }
}

/// Where a document came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `database <host:port/db> table <t>` or a file path. Never holds a password.
    pub source: String,
    /// The row id (revision) in the source table.
    pub revision_id: Option<i64>,
    /// When the revision was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it was last updated (code host connections).
    pub updated_at: Option<DateTime<Utc>>,
    /// The user who wrote the revision (`NULL`: start-up code, e.g. from a file).
    pub author_user_id: Option<i64>,
}

/// Marks a document whose text is ciphertext, as stored with an encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedValue {
    /// The `encryption_key_id` column: the key version JSON (type, name, version); no key material.
    pub key_id: String,
}

/// One configuration document.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigDocument {
    /// What it is.
    pub kind: DocumentKind,
    /// The text, byte for byte as stored (comments, trailing commas, key order, whitespace,
    /// CRLF, non-ASCII). Ciphertext when `encryption` is set. Holds secrets: never log it.
    pub text: String,
    /// Where it came from.
    pub provenance: Provenance,
    /// Set when `text` is ciphertext.
    pub encryption: Option<EncryptedValue>,
}

impl ConfigDocument {
    /// A plaintext document.
    pub fn new(kind: DocumentKind, text: impl Into<String>, provenance: Provenance) -> Self {
        ConfigDocument {
            kind,
            text: text.into(),
            provenance,
            encryption: None,
        }
    }

    /// The name used in messages: `site configuration`, `code host connection GITHUB "x" (id 3)`.
    pub fn name(&self) -> String {
        self.kind.to_string()
    }

    /// Lower-case hex sha256 of the text.
    pub fn sha256(&self) -> String {
        sha256_hex(self.text.as_bytes())
    }

    /// Whether the text is ciphertext.
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }
}

impl fmt::Debug for ConfigDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigDocument")
            .field("kind", &self.kind)
            .field("len", &self.text.len())
            .field("sha256", &self.sha256())
            .field("provenance", &self.provenance)
            .field("encryption", &self.encryption)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ConfigDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sha = self.sha256();
        write!(
            f,
            "{} ({} bytes, sha256 {}",
            self.kind,
            self.text.len(),
            &sha[..12]
        )?;
        if self.is_encrypted() {
            f.write_str(", encrypted")?;
        }
        f.write_str(")")
    }
}

/// The configuration of one instance at one moment.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConfigSnapshot {
    /// The documents: site configuration(s), global settings, code host connections.
    pub documents: Vec<ConfigDocument>,
    /// Where the snapshot was taken (no password).
    pub source: String,
    /// When it was taken.
    pub taken_at: Option<DateTime<Utc>>,
    /// The `EXTSVC_CONFIG_FILE` text as read, when the snapshot came from files: written back
    /// verbatim so that files → backup → files is byte-exact. Holds secrets.
    pub extsvc_file_text: Option<String>,
    /// Conditions found while reading (skipped user-owned connections, ...). Never secrets.
    pub warnings: Vec<String>,
}

impl ConfigSnapshot {
    /// The site configuration documents (one, or several when `SITE_CONFIG_FILE` lists several).
    pub fn site_configurations(&self) -> impl Iterator<Item = &ConfigDocument> {
        self.documents
            .iter()
            .filter(|d| d.kind == DocumentKind::SiteConfiguration)
    }

    /// The global settings document, if any.
    pub fn global_settings(&self) -> Option<&ConfigDocument> {
        self.documents
            .iter()
            .find(|d| d.kind == DocumentKind::GlobalSettings)
    }

    /// The code host connections, in source order.
    pub fn code_hosts(&self) -> impl Iterator<Item = &ConfigDocument> {
        self.documents
            .iter()
            .filter(|d| matches!(d.kind, DocumentKind::CodeHostConnection { .. }))
    }

    /// The encrypted documents.
    pub fn encrypted(&self) -> impl Iterator<Item = &ConfigDocument> {
        self.documents.iter().filter(|d| d.is_encrypted())
    }
}

impl fmt::Debug for ConfigSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSnapshot")
            .field("source", &self.source)
            .field("taken_at", &self.taken_at)
            .field("documents", &self.documents)
            .field(
                "extsvc_file",
                &self
                    .extsvc_file_text
                    .as_ref()
                    .map(|t| (t.len(), sha256_hex(t.as_bytes()))),
            )
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl fmt::Display for ConfigSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "configuration from {}: {} documents",
            self.source,
            self.documents.len()
        )?;
        for d in &self.documents {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// Lower-case hex sha256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file-name-safe slug: lower-case ASCII letters and digits, other runs become `-`.
pub(crate) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    let mut out: String = out.chars().take(60).collect();
    if out.is_empty() {
        out.push_str("connection");
    }
    out
}
