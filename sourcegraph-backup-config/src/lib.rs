//! placeholder docs
mod error;
pub mod files;
pub mod jsonc;
pub mod keys;
mod model;
pub mod redact;

pub use error::ConfigError;
pub use files::ConfigFilePaths;
pub use keys::{encryption_keys, EncryptionKeyRef};
pub use model::{ConfigDocument, ConfigSnapshot, DocumentKind, EncryptedValue, Provenance};
pub use redact::{find_redacted_secrets, redacted_text};
