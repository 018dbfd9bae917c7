//! The core crate's error type.

/// A boxed error: the cause inside a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a caller can do about a store's failure, in the manner of object_store's error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The source or target cannot be reached or authenticated against: check the address,
    /// the network and the credentials, then retry.
    Unreachable,
    /// The target already holds data: restore into an empty one, or ask to replace it.
    TargetNotEmpty,
    /// The target cannot hold this backup (too old a server, a missing extension or role, a
    /// different Sourcegraph version): nothing was written.
    IncompatibleTarget,
    /// The backup is damaged or was tampered with: restore another one.
    CorruptBackup,
    /// The source holds something this store cannot carry: nothing was written.
    UnsupportedObject,
    /// Anything else; the cause says what.
    Other,
}

impl std::fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreErrorKind::Unreachable => "unreachable",
            StoreErrorKind::TargetNotEmpty => "target not empty",
            StoreErrorKind::IncompatibleTarget => "incompatible target",
            StoreErrorKind::CorruptBackup => "corrupt backup",
            StoreErrorKind::UnsupportedObject => "unsupported object",
            StoreErrorKind::Other => "other",
        })
    }
}

/// The error of an [`Exporter`](crate::Exporter), [`Importer`](crate::Importer) or
/// [`DataStore`](crate::DataStore): a kind the caller can act on, and the store's own error
/// inside. It displays as its cause (the kind is for programs: [`StoreError::kind`]).
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: BoxError,
}

impl StoreError {
    /// A store error of `kind` caused by `source`.
    pub fn new(kind: StoreErrorKind, source: impl Into<BoxError>) -> Self {
        StoreError {
            kind,
            source: source.into(),
        }
    }

    /// What the caller can do about it.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The store's own error, e.g. a `PgError`, to inspect with `downcast_ref`.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.source.as_ref()
    }

    /// The store's own error, by value.
    pub fn into_cause(self) -> BoxError {
        self.source
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for StoreError {
    // Transparent: the cause's own chain follows, not the cause twice.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl From<CoreError> for StoreError {
    /// A repository error met inside a store, with its [`CoreError::kind`].
    fn from(e: CoreError) -> Self {
        StoreError::new(e.kind(), e)
    }
}

/// What can go wrong in the core: the backup repository, manifests, the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A repository location could not be parsed or opened.
    #[error("cannot open backup location {location}: {reason}")]
    Location {
        /// The location as given (credentials are never part of it).
        location: String,
        /// Why it failed.
        reason: String,
    },
    /// An object store operation failed.
    #[error("object store {operation} failed for {path}: {reason}")]
    ObjectStore {
        /// What was attempted (put, get, list, ...).
        operation: &'static str,
        /// The object path.
        path: String,
        /// The object store's error with its causes, secrets masked
        /// ([`redact_text`](crate::redact::redact_text)): object_store's messages can carry
        /// signed URLs and keys, so the error itself is not kept.
        reason: String,
        /// Whether the object did not exist.
        not_found: bool,
    },
    /// A backup has no manifest: it was never committed.
    #[error("backup {backup} is incomplete: it has no manifest.json (it was never committed)")]
    Incomplete {
        /// The backup id.
        backup: String,
    },
    /// No backup with that id exists.
    #[error("no backup {backup} under {location}")]
    NoSuchBackup {
        /// The backup id.
        backup: String,
        /// The repository location.
        location: String,
    },
    /// The newest backup's manifest cannot be read, so "the latest backup" is unknown.
    #[error(
        "the newest backup {backup} cannot be read: {reason}; refusing to pick an older one \
         silently: name the backup to use with `--backup ID`{}",
        newest_readable.as_ref().map(|id| format!(" (the newest readable one is {id})")).unwrap_or_default()
    )]
    NewestUnreadable {
        /// The unreadable backup.
        backup: String,
        /// Why it cannot be read.
        reason: String,
        /// The newest backup that can be read, if any.
        newest_readable: Option<String>,
    },
    /// The repository has no complete backup.
    #[error("no complete backup under {location}")]
    NoBackups {
        /// The repository location.
        location: String,
    },
    /// The manifest could not be parsed.
    #[error("manifest of backup {backup} is malformed: {reason}")]
    MalformedManifest {
        /// The backup id.
        backup: String,
        /// What is wrong.
        reason: String,
    },
    /// The manifest was written by a newer library.
    #[error("manifest of backup {backup} has format version {found}, this library reads up to {supported}: upgrade sourcegraph-backup")]
    UnsupportedFormat {
        /// The backup id.
        backup: String,
        /// The version found.
        found: u32,
        /// The newest version this library reads.
        supported: u32,
    },
    /// An artifact does not match its manifest record.
    #[error("artifact {path} is corrupt: {problem}")]
    CorruptArtifact {
        /// The artifact path inside the backup.
        path: String,
        /// What does not match.
        problem: String,
    },
    /// An artifact the manifest lists is missing.
    #[error("artifact {path} is missing from the backup")]
    MissingArtifact {
        /// The artifact path inside the backup.
        path: String,
    },
    /// An artifact name is invalid or used twice.
    #[error("invalid artifact name {name:?} for store {store}: {reason}")]
    InvalidArtifactName {
        /// The store id.
        store: String,
        /// The requested name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// Compressing or decompressing an artifact failed.
    #[error("{operation} of artifact {path} failed")]
    Codec {
        /// compress or decompress.
        operation: &'static str,
        /// The artifact path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The writer of an artifact was dropped or its task failed.
    #[error("artifact {path} was abandoned before it was finished: {reason}")]
    Abandoned {
        /// The artifact path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A store's exporter or importer failed.
    #[error("store {store} failed during {phase}")]
    Store {
        /// The store id.
        store: String,
        /// export, import, check.
        phase: &'static str,
        /// The store's error, with its kind.
        #[source]
        source: StoreError,
    },
    /// A restore failed (when no store's error says more).
    #[error("the restore of backup {backup} failed")]
    RestoreFailed {
        /// The backup id.
        backup: String,
    },
    /// The plan includes a store that no exporter was given for.
    #[error("the plan includes store {store} but no exporter was given for it")]
    MissingExporter {
        /// The store id.
        store: String,
    },
    /// A store named in a request is not part of the backup or plan.
    #[error("store {store} is not part of backup {backup}")]
    UnknownStore {
        /// The store id.
        store: String,
        /// The backup id.
        backup: String,
    },
    /// A backup was interrupted (a signal) before it committed.
    #[error(
        "backup {backup} was interrupted before it was committed; {}",
        if *removed { "what it wrote was removed" } else { "it could not be removed: run `clean` to remove it" }
    )]
    Interrupted {
        /// The backup id.
        backup: String,
        /// Whether everything it wrote was removed.
        removed: bool,
    },
    /// An encrypted backup cannot be opened: no key, a wrong key, or an unknown scheme. The
    /// reason never holds a secret.
    #[error("backup {backup} cannot be opened: {reason}")]
    Encryption {
        /// The backup id.
        backup: String,
        /// Why, with the backup's recipients and what to give.
        reason: String,
    },
    /// Serialising the manifest failed.
    #[error("cannot serialise the manifest: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl CoreError {
    /// What a caller can do about it: a damaged backup is [`StoreErrorKind::CorruptBackup`],
    /// a store's failure has that store's kind, an unreachable repository is
    /// [`StoreErrorKind::Unreachable`].
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            CoreError::CorruptArtifact { .. }
            | CoreError::MissingArtifact { .. }
            | CoreError::MalformedManifest { .. }
            | CoreError::UnsupportedFormat { .. }
            | CoreError::NewestUnreadable { .. } => StoreErrorKind::CorruptBackup,
            CoreError::Store { source, .. } => source.kind(),
            CoreError::Location { .. } => StoreErrorKind::Unreachable,
            CoreError::ObjectStore { not_found: false, .. } => StoreErrorKind::Unreachable,
            _ => StoreErrorKind::Other,
        }
    }

    /// The kind of a store's failure, when a store failed.
    pub fn store_error_kind(&self) -> Option<StoreErrorKind> {
        match self {
            CoreError::Store { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    pub(crate) fn store(
        operation: &'static str,
        path: impl Into<String>,
        source: object_store::Error,
    ) -> Self {
        let not_found = matches!(source, object_store::Error::NotFound { .. });
        let mut reason = source.to_string();
        let mut cause = std::error::Error::source(&source);
        while let Some(c) = cause {
            let text = c.to_string();
            if !reason.contains(&text) {
                reason.push_str(": ");
                reason.push_str(&text);
            }
            cause = c.source();
        }
        CoreError::ObjectStore {
            operation,
            path: crate::redact::redact_text(&path.into()),
            reason: crate::redact::redact_text(&reason),
            not_found,
        }
    }
}
