//! Encryption at rest of every artifact with [age](https://age-encryption.org/v1).
//!
//! # Format
//!
//! An encrypted backup stores each artifact as one age file (binary, not armored) whose
//! plaintext is what an unencrypted backup would store: the zstd stream (or the raw bytes for
//! an artifact written without compression). The writer compresses, then encrypts, in one
//! streamed pass; the manifest's `size` and `sha256` are those of the stored (encrypted)
//! bytes, so `verify` checks a backup without any key. `uncompressed_size` stays the size of
//! the content before compression.
//!
//! The manifest stays plaintext and holds no secret: its `encryption` section names the scheme
//! (`age`), the X25519 recipients' public keys (`age1...`), and, when a passphrase was used,
//! only that fact and the name of the passphrase-protected key file:
//!
//! ```json
//! "encryption": {
//!   "scheme": "age",
//!   "recipients": ["age1..."],
//!   "passphrase": true,
//!   "passphrase_key": "passphrase-key.age"
//! }
//! ```
//!
//! A passphrase is not an age recipient of each artifact (scrypt costs about a second per use
//! by design, per artifact on both sides): the writer generates one X25519 identity per backup,
//! encrypts every artifact to it (and to the given recipients), and stores that identity,
//! encrypted with the passphrase (age's scrypt recipient), as `<backup>/passphrase-key.age`.
//! `age -d -i` reads such a passphrase-protected identity file directly.
//!
//! The stores' details in the manifest hold no content either: the configuration store records
//! SHA-256 digests of its documents, not their text; the Postgres and volume stores record
//! table, file and schema facts.
//!
//! # By hand
//!
//! ```sh
//! # with an X25519 identity (age-keygen's key.txt):
//! age -d -i key.txt  <backup>/<store>/<artifact> | zstd -d > artifact
//! # with the passphrase (age asks for it, then decrypts the backup's identity):
//! age -d -i <backup>/passphrase-key.age <backup>/<store>/<artifact> | zstd -d > artifact
//! ```
//!
//! Leave out `| zstd -d` for an artifact whose manifest record says `"codec": "none"`.
//!
//! # Opening
//!
//! [`BackupRepository::open_backup`](super::BackupRepository::open_backup) of an encrypted
//! backup checks the key before it returns: it decrypts the passphrase key file, if any, and
//! the header of the first artifact (age authenticates the header, so a wrong identity fails
//! there), and refuses, naming the backup and its recipients, without a key or with a wrong
//! one: no store has written anything by then.

use std::io::Write;
use std::sync::Arc;

/// The age crate, for its key types (`age::x25519::{Identity, Recipient}`) and
/// `age::secrecy::SecretString`.
pub use age;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::BackupRepository;
use crate::error::CoreError;
use crate::manifest::BackupManifest;

/// The scheme name the manifest records.
pub const AGE_SCHEME: &str = "age";

/// The file, at the root of a backup prefix, holding the backup's identity encrypted with the
/// passphrase.
pub const PASSPHRASE_KEY_FILE: &str = "passphrase-key.age";

/// How much of the first artifact is read to check the key: an age header with a few
/// recipients is a few hundred bytes.
const HEADER_PROBE: u64 = 64 * 1024;

/// The largest passphrase key file read (it holds one identity: about 300 bytes).
const KEY_FILE_LIMIT: u64 = 64 * 1024;

/// The manifest's record of how a backup is encrypted: public facts only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    /// The scheme: `age`.
    pub scheme: String,
    /// The X25519 recipients' public keys (`age1...`) every artifact is encrypted to.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Whether a passphrase opens the backup too.
    #[serde(default)]
    pub passphrase: bool,
    /// The passphrase-protected identity file, relative to the backup prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_key: Option<String>,
}

impl EncryptionInfo {
    /// Who can open the backup, for messages: the recipients and whether a passphrase does.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.recipients.is_empty() {
            parts.push(format!("recipients {}", self.recipients.join(", ")));
        }
        if self.passphrase {
            parts.push("a passphrase".into());
        }
        if parts.is_empty() {
            "no recipient".into()
        } else {
            parts.join(" and ")
        }
    }
}

/// How a new backup is encrypted: to X25519 recipients, with a passphrase, or both.
#[derive(Clone)]
pub struct Encryption {
    recipients: Vec<x25519::Recipient>,
    passphrase: Option<SecretString>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field(
                "recipients",
                &self
                    .recipients
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .field("passphrase", &self.passphrase.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Encryption {
    /// Every artifact encrypted to these public keys (`age-keygen`'s `age1...`); any one of
    /// the matching identities opens the backup.
    pub fn recipients(recipients: Vec<x25519::Recipient>) -> Self {
        Encryption {
            recipients,
            passphrase: None,
        }
    }

    /// Every artifact openable with this passphrase.
    pub fn passphrase(passphrase: SecretString) -> Self {
        Encryption {
            recipients: Vec::new(),
            passphrase: Some(passphrase),
        }
    }

    /// Adds a passphrase to recipients (either opens the backup).
    pub fn with_passphrase(mut self, passphrase: SecretString) -> Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// Parses recipients from `age1...` strings.
    pub fn parse_recipients<S: AsRef<str>>(keys: &[S]) -> Result<Self, String> {
        let recipients = keys
            .iter()
            .map(|k| {
                k.as_ref()
                    .trim()
                    .parse::<x25519::Recipient>()
                    .map_err(|e| format!("{:?} is not an age X25519 recipient: {e}", k.as_ref()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Encryption::recipients(recipients))
    }
}

/// Keys that open encrypted backups: X25519 identities, a passphrase, or both.
#[derive(Clone, Default)]
pub struct Decryption {
    identities: Vec<x25519::Identity>,
    passphrase: Option<SecretString>,
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryption")
            .field(
                "identities",
                &self
                    .identities
                    .iter()
                    .map(|i| i.to_public().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("passphrase", &self.passphrase.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Decryption {
    /// X25519 identities (`AGE-SECRET-KEY-1...`).
    pub fn identities(identities: Vec<x25519::Identity>) -> Self {
        Decryption {
            identities,
            passphrase: None,
        }
    }

    /// A passphrase.
    pub fn passphrase(passphrase: SecretString) -> Self {
        Decryption {
            identities: Vec::new(),
            passphrase: Some(passphrase),
        }
    }

    /// Adds a passphrase to identities.
    pub fn with_passphrase(mut self, passphrase: SecretString) -> Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// Reads the X25519 identities of an identity file as `age-keygen` writes it
    /// (`AGE-SECRET-KEY-1...` lines; `#` comments and blank lines ignored). The error never
    /// holds the file's text.
    pub fn identity_file(path: impl AsRef<std::path::Path>) -> Result<Self, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read identity file {}: {e}", path.display()))?;
        let text = SecretString::from(text);
        let mut identities = Vec::new();
        for (n, line) in text.expose_secret().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            identities.push(line.parse::<x25519::Identity>().map_err(|_| {
                format!(
                    "line {} of identity file {} is not an age X25519 identity (AGE-SECRET-KEY-1...)",
                    n + 1,
                    path.display()
                )
            })?);
        }
        if identities.is_empty() {
            return Err(format!("identity file {} holds no identity", path.display()));
        }
        Ok(Decryption::identities(identities))
    }
}

/// What a backup writer encrypts with.
pub(crate) struct WriterKeys {
    /// Every artifact's recipients (the given ones and the passphrase identity's).
    pub(crate) recipients: Vec<x25519::Recipient>,
    /// The passphrase and the backup identity it protects.
    pub(crate) passphrase: Option<(SecretString, x25519::Identity)>,
    /// What the manifest records.
    pub(crate) info: EncryptionInfo,
}

impl std::fmt::Debug for WriterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterKeys")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl WriterKeys {
    pub(crate) fn new(encryption: &Encryption) -> Result<Self, String> {
        if encryption.recipients.is_empty() && encryption.passphrase.is_none() {
            return Err("encryption needs at least one recipient or a passphrase".into());
        }
        let mut recipients = encryption.recipients.clone();
        let passphrase = encryption.passphrase.clone().map(|p| {
            let identity = x25519::Identity::generate();
            recipients.push(identity.to_public());
            (p, identity)
        });
        Ok(WriterKeys {
            recipients,
            info: EncryptionInfo {
                scheme: AGE_SCHEME.into(),
                recipients: encryption.recipients.iter().map(ToString::to_string).collect(),
                passphrase: passphrase.is_some(),
                passphrase_key: passphrase.as_ref().map(|_| PASSPHRASE_KEY_FILE.to_string()),
            },
            passphrase,
        })
    }

    /// The passphrase key file's bytes: the backup identity encrypted with the passphrase
    /// (scrypt; about a second of work, blocking).
    pub(crate) fn passphrase_key_file(&self) -> std::io::Result<Option<Vec<u8>>> {
        let Some((passphrase, identity)) = &self.passphrase else {
            return Ok(None);
        };
        let encryptor = age::Encryptor::with_user_passphrase(passphrase.clone());
        let mut out = Vec::new();
        let mut w = encryptor.wrap_output(&mut out)?;
        w.write_all(b"# sourcegraph-backup: this backup's identity\n")?;
        w.write_all(identity.to_string().expose_secret().as_bytes())?;
        w.write_all(b"\n")?;
        w.finish()?;
        Ok(Some(out))
    }

    /// An age encryptor for one artifact.
    pub(crate) fn encryptor(&self) -> Result<age::Encryptor, age::EncryptError> {
        age::Encryptor::with_recipients(self.recipients.iter().map(|r| r as &dyn age::Recipient))
    }
}

/// The identities that open a backup, checked; never shown.
#[derive(Clone)]
pub(crate) struct Keys(Arc<Vec<x25519::Identity>>);

impl Keys {
    pub(crate) fn identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.0.iter().map(|i| i as &dyn age::Identity)
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys([{} redacted])", self.0.len())
    }
}

fn refused(backup: &str, reason: String) -> CoreError {
    CoreError::Encryption {
        backup: backup.into(),
        reason,
    }
}

/// Resolves and checks the keys of an encrypted backup before it is read: the passphrase key
/// file, then the first artifact's age header. `None` for an unencrypted backup.
pub(crate) async fn unlock(
    repo: &BackupRepository,
    manifest: &BackupManifest,
) -> Result<Option<Keys>, CoreError> {
    let Some(info) = &manifest.encryption else {
        return Ok(None);
    };
    let backup = manifest.backup_id.as_str();
    if info.scheme != AGE_SCHEME {
        return Err(refused(
            backup,
            format!("unknown scheme {:?}: upgrade sourcegraph-backup", info.scheme),
        ));
    }
    let how = "give the matching identity (Decryption::identities, --identity FILE) or the \
               passphrase (Decryption::passphrase)";
    let Some(dec) = repo.decryption.as_deref() else {
        return Err(refused(
            backup,
            format!("it is encrypted for {}; no key was given: {how}", info.describe()),
        ));
    };
    let mut identities = dec.identities.clone();
    if let (Some(passphrase), Some(key_file)) = (&dec.passphrase, &info.passphrase_key) {
        let bytes = get_prefix(repo, backup, key_file, KEY_FILE_LIMIT).await?;
        let passphrase = passphrase.clone();
        let identity = tokio::task::spawn_blocking(move || unwrap_passphrase_key(&bytes, passphrase))
            .await
            .map_err(|e| refused(backup, e.to_string()))?
            .map_err(|reason| refused(backup, reason))?;
        identities.push(identity);
    }
    if identities.is_empty() {
        return Err(refused(
            backup,
            format!(
                "it is encrypted for {}; the keys given hold no identity for it: {how}",
                info.describe()
            ),
        ));
    }
    let first = manifest.stores.iter().flat_map(|s| &s.artifacts).next();
    if let Some(record) = first {
        let bytes = get_prefix(repo, backup, &record.path, HEADER_PROBE.min(record.size)).await?;
        let decryptor = age::Decryptor::new_buffered(&bytes[..]).map_err(|e| CoreError::CorruptArtifact {
            path: record.path.clone(),
            problem: format!("not an age file: {e}"),
        })?;
        if let Err(e) = decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity)) {
            return Err(refused(
                backup,
                match e {
                    age::DecryptError::NoMatchingKeys => format!(
                        "it is encrypted for {}; none of the keys given matches: {how}",
                        info.describe()
                    ),
                    other => format!("the header of artifact {} does not decrypt: {other}", record.path),
                },
            ));
        }
    }
    Ok(Some(Keys(Arc::new(identities))))
}

/// The backup identity inside a passphrase key file (blocking: scrypt).
fn unwrap_passphrase_key(bytes: &[u8], passphrase: SecretString) -> Result<x25519::Identity, String> {
    let decryptor = age::Decryptor::new_buffered(bytes)
        .map_err(|e| format!("its passphrase key file is not an age file: {e}"))?;
    let identity = age::scrypt::Identity::new(passphrase);
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                "the passphrase given does not open it".to_string()
            }
            other => format!("its passphrase key file does not decrypt: {other}"),
        })?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut reader, &mut text)
        .map_err(|e| format!("its passphrase key file does not decrypt: {e}"))?;
    let text = SecretString::from(text);
    text.expose_secret()
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.parse::<x25519::Identity>().ok())
        .ok_or_else(|| "its passphrase key file holds no identity".to_string())
}

/// At most the first `limit` bytes of an object of a backup.
async fn get_prefix(
    repo: &BackupRepository,
    backup: &str,
    relative: &str,
    limit: u64,
) -> Result<bytes::Bytes, CoreError> {
    let object = repo.object_path(backup, relative);
    if let Some(root) = repo.local_root.as_deref() {
        super::reader::inside_local_repository(root, &object, relative).await?;
    }
    let missing = |e| match e {
        object_store::Error::NotFound { .. } => CoreError::MissingArtifact {
            path: relative.into(),
        },
        e => CoreError::store("get", object.to_string(), e),
    };
    let meta = repo.store.head(&object).await.map_err(missing)?;
    let end = limit.min(meta.size);
    if end == 0 {
        return Ok(bytes::Bytes::new());
    }
    repo.store.get_range(&object, 0..end).await.map_err(missing)
}
