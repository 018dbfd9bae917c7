//! Which key material `encryption.keys` in the site configuration points to.
//!
//! Values encrypted at rest (code host configs, user credentials, ...) stay readable on a new
//! instance only if it is given the same keys: the mounted key file or environment variable, or
//! access to the same Cloud KMS / AWS KMS key. This names them (type, name, path, variable),
//! never key material.

use jsonc_parser::ast::{Object, Value};
use serde::{Deserialize, Serialize};

use crate::jsonc::parse_object;
use crate::model::{ConfigDocument, DocumentKind};

/// One configured encryption key, as named in the site configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionKeyRef {
    /// What the key protects: `externalServiceKey`, `userExternalAccountKey`, ...
    pub purpose: String,
    /// `mounted`, `cloudkms`, `awskms`, `noop`.
    pub key_type: String,
    /// `keyname` (mounted, cloudkms) or `keyId` (awskms).
    pub name: Option<String>,
    /// `filepath` of a mounted key (the file must exist on the new instance).
    pub file_path: Option<String>,
    /// `envVarName` of a mounted key (the variable must be set on the new instance).
    pub env_var_name: Option<String>,
    /// `region` of an AWS KMS key.
    pub region: Option<String>,
    /// `credentialsFile` of a KMS key (the file must exist on the new instance).
    pub credentials_file: Option<String>,
}

impl std::fmt::Display for EncryptionKeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} key", self.purpose, self.key_type)?;
        if let Some(n) = &self.name {
            write!(f, " {n:?}")?;
        }
        if let Some(p) = &self.file_path {
            write!(f, " from file {p}")?;
        }
        if let Some(v) = &self.env_var_name {
            write!(f, " from environment variable {v}")?;
        }
        if let Some(r) = &self.region {
            write!(f, " in region {r}")?;
        }
        if let Some(c) = &self.credentials_file {
            write!(f, " with credentials file {c}")?;
        }
        Ok(())
    }
}

/// The keys configured under `encryption.keys` of a site configuration document (empty for
/// other documents or when none are configured, or when the document does not parse).
pub fn encryption_keys(doc: &ConfigDocument) -> Vec<EncryptionKeyRef> {
    if doc.kind != DocumentKind::SiteConfiguration || doc.is_encrypted() {
        return Vec::new();
    }
    let Ok(obj) = parse_object(&doc.name(), &doc.text) else {
        return Vec::new();
    };
    // Both the flat `"encryption.keys"` and a nested `encryption: {keys}` spelling.
    let keys = obj
        .get_object("encryption.keys")
        .or_else(|| obj.get_object("encryption").and_then(|e| e.get_object("keys")));
    let Some(keys) = keys else {
        return Vec::new();
    };
    keys.properties
        .iter()
        .filter_map(|p| match &p.value {
            Value::Object(k) => Some(key_ref(p.name.as_str(), k)),
            _ => None, // enableCache, cacheSize
        })
        .collect()
}

fn key_ref(purpose: &str, k: &Object<'_>) -> EncryptionKeyRef {
    let s = |name: &str| k.get_string(name).map(|v| v.value.to_string());
    EncryptionKeyRef {
        purpose: purpose.to_owned(),
        key_type: s("type").unwrap_or_else(|| "unknown".into()),
        name: s("keyname").or_else(|| s("keyId")),
        file_path: s("filepath").or_else(|| s("filePath")),
        env_var_name: s("envVarName"),
        region: s("region"),
        credentials_file: s("credentialsFile"),
    }
}
