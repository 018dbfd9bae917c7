//! Writing a backup: streamed artifacts, then the manifest, last.
//!
//! An artifact flows through three stages so that no stage waits on another
//! and memory stays bounded whatever the artifact's size:
//! caller → (bounded channel) → encoder thread (zstd, then age encryption when the backup is
//! encrypted, then SHA-256 of the stored bytes) → (bounded channel) → upload task (one `put` for small artifacts,
//! a multipart upload of [`PART_SIZE`] parts otherwise).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::encryption::{WriterKeys, PASSPHRASE_KEY_FILE};
use super::lease::{self, LEASE_FILE};
use super::{validate_relative_path, BackupRepository, PART_SIZE};
use crate::error::CoreError;
use crate::manifest::{
    ArtifactRecord, BackupManifest, Compression, SourceInfo, StoreManifest, FORMAT_VERSION, MANIFEST_FILE,
};
use crate::model::{BackupOption, CatalogId, StoreKind};
use crate::plan::Plan;

/// Size of the chunks handed from the encoder to the upload task.
const ENCODED_CHUNK: usize = 1024 * 1024;
/// Chunks in flight between the stages.
const CHANNEL_DEPTH: usize = 4;
/// Parts uploaded concurrently per artifact.
const UPLOAD_CONCURRENCY: usize = 2;

/// How an artifact is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactOptions {
    /// Media type of the uncompressed content.
    pub content_type: String,
    /// Compression applied while streaming.
    pub compression: Compression,
}

impl ArtifactOptions {
    /// zstd level 1 with the given content type.
    pub fn zstd(content_type: &str) -> Self {
        ArtifactOptions {
            content_type: content_type.into(),
            compression: Compression::DEFAULT_ZSTD,
        }
    }

    /// Stored as written.
    pub fn plain(content_type: &str) -> Self {
        ArtifactOptions {
            content_type: content_type.into(),
            compression: Compression::None,
        }
    }
}

/// A store's section of the manifest, as its exporter reported it; the
/// artifacts are filled in from what was committed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSection {
    /// The store id.
    pub id: String,
    /// The store kind.
    pub kind: StoreKind,
    /// The catalog rows or volume it carries.
    pub catalog: Vec<CatalogId>,
    /// Store-specific facts.
    pub details: serde_json::Value,
    /// Conditions a restorer should know.
    pub warnings: Vec<String>,
}

/// A backup being written. Cheap to clone; every clone writes the same backup.
#[derive(Debug, Clone)]
pub struct BackupWriter {
    inner: Arc<WriterState>,
}

#[derive(Debug)]
struct WriterState {
    repo: BackupRepository,
    id: String,
    created_at: DateTime<Utc>,
    option: BackupOption,
    /// Every artifact path reserved, with its record once finished.
    artifacts: Mutex<BTreeMap<String, Option<ArtifactRecord>>>,
    /// Set once the backup's directory is private and its lease written.
    started: tokio::sync::OnceCell<()>,
    /// Ends the lease renewal (commit or abort).
    stop_renewal: tokio::sync::watch::Sender<bool>,
    /// Set by `abort`: nothing more may be written or committed.
    aborted: std::sync::atomic::AtomicBool,
    /// Upload tasks still running (abort waits for them before deleting).
    in_flight: tokio::sync::watch::Sender<usize>,
    /// The age keys every artifact is encrypted with; `None` stores artifacts as they are.
    keys: Option<Arc<WriterKeys>>,
}

/// Counts an upload task as in flight while it lives.
struct InFlight(tokio::sync::watch::Sender<usize>);

impl InFlight {
    fn new(counter: &tokio::sync::watch::Sender<usize>) -> Self {
        counter.send_modify(|n| *n += 1);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// How long `abort` waits for interrupted uploads to stop before deleting.
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl BackupWriter {
    pub(super) fn new(
        repo: BackupRepository,
        id: String,
        created_at: DateTime<Utc>,
        option: BackupOption,
        keys: Option<Arc<WriterKeys>>,
    ) -> Self {
        BackupWriter {
            inner: Arc::new(WriterState {
                repo,
                id,
                created_at,
                option,
                artifacts: Mutex::new(BTreeMap::new()),
                started: tokio::sync::OnceCell::new(),
                stop_renewal: tokio::sync::watch::channel(false).0,
                aborted: std::sync::atomic::AtomicBool::new(false),
                in_flight: tokio::sync::watch::channel(0).0,
                keys,
            }),
        }
    }

    /// Before the first write: makes a local backup's directory private and takes the lease
    /// (renewed until commit or abort) that keeps `clean` away from a running backup.
    async fn ensure_started(&self) -> Result<(), CoreError> {
        if self.inner.aborted.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CoreError::Abandoned {
                path: self.inner.id.clone(),
                reason: "the backup was aborted".into(),
            });
        }
        self.inner
            .started
            .get_or_try_init(|| async {
                let repo = &self.inner.repo;
                if let Some(root) = repo.local_root.clone() {
                    let dir = root.join(&self.inner.id);
                    tokio::task::spawn_blocking(move || super::private::create_private_dir(&dir))
                        .await
                        .map_err(|e| CoreError::Abandoned {
                            path: self.inner.id.clone(),
                            reason: e.to_string(),
                        })?
                        .map_err(|source| CoreError::Codec {
                            operation: "directory creation",
                            path: self.inner.id.clone(),
                            source,
                        })?;
                }
                let path = repo.object_path(&self.inner.id, LEASE_FILE);
                lease::put(&repo.store, &path, &self.inner.id, repo.lease_duration).await?;
                lease::spawn_renewal(
                    Arc::downgrade(&self.inner),
                    repo.store.clone(),
                    path,
                    self.inner.id.clone(),
                    repo.lease_duration,
                    self.inner.stop_renewal.subscribe(),
                );
                self.put_passphrase_key().await?;
                Ok::<(), CoreError>(())
            })
            .await
            .map(|_| ())
    }

    /// With a passphrase: stores the backup identity, encrypted with it (scrypt, on a blocking
    /// thread), as [`PASSPHRASE_KEY_FILE`].
    async fn put_passphrase_key(&self) -> Result<(), CoreError> {
        let Some(keys) = self.inner.keys.clone() else {
            return Ok(());
        };
        let codec = |source| CoreError::Codec {
            operation: "encryption",
            path: PASSPHRASE_KEY_FILE.into(),
            source,
        };
        let file = tokio::task::spawn_blocking(move || keys.passphrase_key_file())
            .await
            .map_err(|e| codec(std::io::Error::other(e.to_string())))?
            .map_err(codec)?;
        let Some(file) = file else {
            return Ok(());
        };
        let path = self.inner.repo.object_path(&self.inner.id, PASSPHRASE_KEY_FILE);
        self.inner
            .repo
            .store
            .put(&path, PutPayload::from(file))
            .await
            .map_err(|e| CoreError::store("put", path.to_string(), e))?;
        self.make_private(PASSPHRASE_KEY_FILE).await
    }

    /// Ends the lease: stops renewing it and deletes it.
    async fn release_lease(&self) {
        let _ = self.inner.stop_renewal.send(true);
        let path = self.inner.repo.object_path(&self.inner.id, LEASE_FILE);
        let _ = self.inner.repo.store.delete(&path).await;
    }

    /// Abandons the backup and deletes everything it wrote (artifacts, partial uploads, its
    /// lease). Writers still streaming fail; the backup can no longer be committed.
    pub async fn abort(&self) -> Result<(), CoreError> {
        self.inner
            .aborted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.inner.stop_renewal.send(true);
        // Uploads whose writers were dropped abort themselves; wait so none lands after the
        // deletion.
        let mut in_flight = self.inner.in_flight.subscribe();
        let _ = tokio::time::timeout(ABORT_WAIT, in_flight.wait_for(|n| *n == 0)).await;
        self.inner.repo.delete_incomplete(&self.inner.id).await
    }

    /// The backup id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The option this backup was started for.
    pub fn option(&self) -> BackupOption {
        self.inner.option
    }

    /// Starts streaming artifact `<store>/<name>`. `name` may contain `/`.
    pub async fn artifact(
        &self,
        store: &str,
        name: &str,
        options: ArtifactOptions,
    ) -> Result<ArtifactWriter, CoreError> {
        let path = format!("{store}/{name}");
        let invalid = |reason: String| CoreError::InvalidArtifactName {
            store: store.into(),
            name: name.into(),
            reason,
        };
        if store.contains('/') || name == MANIFEST_FILE {
            return Err(invalid("reserved or malformed".into()));
        }
        validate_relative_path(&path).map_err(invalid)?;
        self.ensure_started().await?;
        {
            let mut reserved = lock(&self.inner.artifacts);
            if reserved.contains_key(&path) {
                return Err(invalid("already written in this backup".into()));
            }
            reserved.insert(path.clone(), None);
        }
        let object = self.inner.repo.object_path(&self.inner.id, &path);
        Ok(ArtifactWriter::start(self.clone(), path, object, options))
    }

    fn record(&self, record: ArtifactRecord) {
        lock(&self.inner.artifacts).insert(record.path.clone(), Some(record));
    }

    /// Artifacts committed so far for a store, in path order.
    pub fn artifacts_of(&self, store: &str) -> Vec<ArtifactRecord> {
        lock(&self.inner.artifacts)
            .values()
            .flatten()
            .filter(|r| r.store() == store)
            .cloned()
            .collect()
    }

    /// Writes the manifest, making the backup complete. Fails, writing
    /// nothing, when an artifact was started but not finished or belongs to
    /// no listed store.
    pub async fn commit(
        &self,
        stores: Vec<StoreSection>,
        plan: Option<Plan>,
        source: SourceInfo,
        warnings: Vec<String>,
    ) -> Result<BackupManifest, CoreError> {
        self.ensure_started().await?;
        let artifacts = lock(&self.inner.artifacts).clone();
        for (path, rec) in &artifacts {
            if rec.is_none() {
                return Err(CoreError::Abandoned {
                    path: path.clone(),
                    reason: "never finished; the manifest was not written".into(),
                });
            }
            if !stores
                .iter()
                .any(|s| path.split('/').next() == Some(s.id.as_str()))
            {
                return Err(CoreError::UnknownStore {
                    store: path.split('/').next().unwrap_or_default().into(),
                    backup: self.inner.id.clone(),
                });
            }
        }
        let stores = stores
            .into_iter()
            .map(|s| StoreManifest {
                artifacts: artifacts
                    .values()
                    .flatten()
                    .filter(|r| r.store() == s.id)
                    .cloned()
                    .collect(),
                id: s.id,
                kind: s.kind,
                catalog: s.catalog,
                details: s.details,
                warnings: s.warnings,
            })
            .collect();
        let manifest = BackupManifest {
            format_version: FORMAT_VERSION,
            backup_id: self.inner.id.clone(),
            created_at: self.inner.created_at,
            completed_at: Utc::now(),
            library_version: env!("CARGO_PKG_VERSION").into(),
            option: self.inner.option,
            source,
            plan,
            stores,
            warnings,
            encryption: self.inner.keys.as_ref().map(|k| k.info.clone()),
        };
        let json = serde_json::to_vec_pretty(&manifest)?;
        let path = self.inner.repo.object_path(&self.inner.id, MANIFEST_FILE);
        self.inner
            .repo
            .store
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| CoreError::store("put", path.to_string(), e))?;
        self.make_private(MANIFEST_FILE).await?;
        self.release_lease().await;
        Ok(manifest)
    }

    /// In a local repository, makes a written file `0600` and its directories `0700`.
    async fn make_private(&self, relative: &str) -> Result<(), CoreError> {
        let Some(root) = self.inner.repo.local_root.clone() else {
            return Ok(());
        };
        let base = root.join(&self.inner.id);
        let rel = relative.to_string();
        tokio::task::spawn_blocking(move || super::private::make_private(&base, &rel))
            .await
            .map_err(|e| CoreError::Abandoned {
                path: relative.into(),
                reason: e.to_string(),
            })?
            .map_err(|source| CoreError::Codec {
                operation: "permission change",
                path: relative.into(),
                source,
            })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

enum Input {
    Data(Bytes),
    Finish,
}

enum Encoded {
    Chunk(Bytes),
    Done {
        sha256: String,
        size: u64,
        uncompressed: u64,
    },
}

/// Streams one artifact into the backup. Finish it with
/// [`ArtifactWriter::finish`]; dropping it aborts the upload and the backup
/// cannot be committed.
#[derive(Debug)]
pub struct ArtifactWriter {
    path: String,
    tx: mpsc::Sender<Input>,
    upload: JoinHandle<Result<ArtifactRecord, CoreError>>,
}

impl ArtifactWriter {
    fn start(backup: BackupWriter, path: String, object: Path, options: ArtifactOptions) -> Self {
        let (tx, rx) = mpsc::channel::<Input>(CHANNEL_DEPTH);
        let (enc_tx, enc_rx) = mpsc::channel::<Result<Encoded, CoreError>>(CHANNEL_DEPTH);
        let enc_path = path.clone();
        let compression = options.compression;
        let keys = backup.inner.keys.clone();
        tokio::task::spawn_blocking(move || encode(rx, enc_tx, compression, keys.as_deref(), &enc_path));
        let in_flight = InFlight::new(&backup.inner.in_flight);
        let upload_path = path.clone();
        let upload = tokio::spawn(async move {
            let _in_flight = in_flight;
            upload(backup, upload_path, object, options, enc_rx).await
        });
        ArtifactWriter { path, tx, upload }
    }

    /// The artifact path inside the backup.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Appends bytes. Waits while the pipeline is full (back-pressure).
    pub async fn write(&mut self, data: Bytes) -> Result<(), CoreError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.tx.send(Input::Data(data)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Finishes the artifact: flushes, uploads the rest and returns its record.
    pub async fn finish(mut self) -> Result<ArtifactRecord, CoreError> {
        if self.tx.send(Input::Finish).await.is_err() {
            return Err(self.failure().await);
        }
        drop(self.tx);
        join(self.upload, &self.path).await
    }

    /// The error that stopped the pipeline.
    async fn failure(&mut self) -> CoreError {
        match (&mut self.upload).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => CoreError::Abandoned {
                path: self.path.clone(),
                reason: "upload ended early".into(),
            },
            Err(e) => CoreError::Abandoned {
                path: self.path.clone(),
                reason: e.to_string(),
            },
        }
    }

    /// A blocking `std::io::Write` over this artifact, for code that runs in
    /// `spawn_blocking` (tar). Writes are buffered into 1 MiB chunks.
    pub fn into_blocking(self) -> BlockingArtifactWriter {
        BlockingArtifactWriter {
            buf: BytesMut::with_capacity(ENCODED_CHUNK),
            writer: Some(self),
            handle: tokio::runtime::Handle::current(),
        }
    }
}

async fn join(
    handle: JoinHandle<Result<ArtifactRecord, CoreError>>,
    path: &str,
) -> Result<ArtifactRecord, CoreError> {
    handle.await.map_err(|e| CoreError::Abandoned {
        path: path.into(),
        reason: e.to_string(),
    })?
}

/// A blocking writer over an [`ArtifactWriter`]; call [`Self::finish`].
#[derive(Debug)]
pub struct BlockingArtifactWriter {
    buf: BytesMut,
    writer: Option<ArtifactWriter>,
    handle: tokio::runtime::Handle,
}

impl BlockingArtifactWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = self.buf.split().freeze();
        let Some(w) = self.writer.as_mut() else {
            return Err(std::io::Error::other("artifact writer already finished"));
        };
        if w.tx.blocking_send(Input::Data(data)).is_err() {
            let err = self.handle.block_on(w.failure());
            return Err(std::io::Error::other(err));
        }
        Ok(())
    }

    /// Flushes and finishes the artifact (blocking).
    pub fn finish(mut self) -> Result<ArtifactRecord, CoreError> {
        let path = self.writer.as_ref().map(|w| w.path.clone()).unwrap_or_default();
        if let Err(e) = self.send() {
            return Err(match e.downcast::<CoreError>() {
                Ok(core) => core,
                Err(e) => CoreError::Abandoned {
                    path,
                    reason: e.to_string(),
                },
            });
        }
        let Some(w) = self.writer.take() else {
            return Err(CoreError::Abandoned {
                path,
                reason: "already finished".into(),
            });
        };
        self.handle.clone().block_on(w.finish())
    }
}

impl Write for BlockingArtifactWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= ENCODED_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Hashes and forwards encoded bytes in [`ENCODED_CHUNK`] pieces.
struct EncodedSink {
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
    tx: mpsc::Sender<Result<Encoded, CoreError>>,
}

impl EncodedSink {
    fn ship(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(ENCODED_CHUNK));
        self.hasher.update(&chunk);
        self.size += chunk.len() as u64;
        self.tx
            .blocking_send(Ok(Encoded::Chunk(Bytes::from(chunk))))
            .map_err(|_| std::io::Error::other("upload stopped"))
    }
}

impl Write for EncodedSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= ENCODED_CHUNK {
            self.ship()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The stored bytes' last stage: age encryption, or none.
enum Cipher {
    Plain(EncodedSink),
    Age(age::stream::StreamWriter<EncodedSink>),
}

impl Cipher {
    fn new(sink: EncodedSink, keys: Option<&WriterKeys>) -> std::io::Result<Self> {
        match keys {
            None => Ok(Cipher::Plain(sink)),
            Some(keys) => {
                let encryptor = keys.encryptor().map_err(std::io::Error::other)?;
                Ok(Cipher::Age(encryptor.wrap_output(sink)?))
            }
        }
    }

    /// Writes the last encrypted chunk (its tag marks the end).
    fn finish(self) -> std::io::Result<EncodedSink> {
        match self {
            Cipher::Plain(sink) => Ok(sink),
            Cipher::Age(w) => w.finish(),
        }
    }
}

impl Write for Cipher {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Cipher::Plain(sink) => sink.write(data),
            Cipher::Age(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Cipher::Plain(sink) => sink.flush(),
            Cipher::Age(w) => w.flush(),
        }
    }
}

/// The encoder stage, on a blocking thread: compression, then encryption, then hashing.
fn encode(
    mut rx: mpsc::Receiver<Input>,
    tx: mpsc::Sender<Result<Encoded, CoreError>>,
    compression: Compression,
    keys: Option<&WriterKeys>,
    path: &str,
) {
    let sink = EncodedSink {
        buf: Vec::with_capacity(ENCODED_CHUNK),
        hasher: Sha256::new(),
        size: 0,
        tx: tx.clone(),
    };
    let codec_err = |source| CoreError::Codec {
        operation: "compression",
        path: path.into(),
        source,
    };
    let result = (|| -> Result<Option<(EncodedSink, u64)>, CoreError> {
        let sink = Cipher::new(sink, keys).map_err(|source| CoreError::Codec {
            operation: "encryption",
            path: path.into(),
            source,
        })?;
        let mut uncompressed = 0u64;
        match compression {
            Compression::None => {
                let mut sink = sink;
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Input::Data(d) => {
                            uncompressed += d.len() as u64;
                            sink.write_all(&d).map_err(codec_err)?;
                        }
                        Input::Finish => return Ok(Some((sink.finish().map_err(codec_err)?, uncompressed))),
                    }
                }
                Ok(None)
            }
            Compression::Zstd { level } => {
                let mut enc = zstd::stream::write::Encoder::new(sink, level).map_err(codec_err)?;
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Input::Data(d) => {
                            uncompressed += d.len() as u64;
                            enc.write_all(&d).map_err(codec_err)?;
                        }
                        Input::Finish => {
                            let cipher = enc.finish().map_err(codec_err)?;
                            return Ok(Some((cipher.finish().map_err(codec_err)?, uncompressed)));
                        }
                    }
                }
                Ok(None)
            }
        }
    })();
    match result {
        Ok(Some((mut sink, uncompressed))) => {
            if let Err(e) = sink.ship() {
                let _ = tx.blocking_send(Err(codec_err(e)));
                return;
            }
            let sha256 = hex::encode(sink.hasher.finalize_reset());
            let _ = tx.blocking_send(Ok(Encoded::Done {
                sha256,
                size: sink.size,
                uncompressed,
            }));
        }
        // The writer was dropped without finishing: closing `tx` aborts the upload.
        Ok(None) => {}
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
        }
    }
}

/// The upload stage: a single `put` when the artifact fits one part, a
/// multipart upload otherwise; aborted on any failure.
async fn upload(
    backup: BackupWriter,
    path: String,
    object: Path,
    options: ArtifactOptions,
    mut rx: mpsc::Receiver<Result<Encoded, CoreError>>,
) -> Result<ArtifactRecord, CoreError> {
    let store = backup.inner.repo.store.clone();
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0usize;
    let mut multipart: Option<WriteMultipart> = None;
    let put_err = |e| CoreError::store("multipart put", object.to_string(), e);
    let outcome = loop {
        match rx.recv().await {
            Some(Ok(Encoded::Chunk(chunk))) => {
                if let Some(mp) = multipart.as_mut() {
                    if let Err(e) = mp.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                        break Err(put_err(e));
                    }
                    mp.put(chunk);
                    continue;
                }
                pending_len += chunk.len();
                pending.push(chunk);
                if pending_len >= PART_SIZE {
                    match store.put_multipart(&object).await {
                        Ok(up) => {
                            let mut mp = WriteMultipart::new_with_chunk_size(up, PART_SIZE);
                            for c in pending.drain(..) {
                                mp.put(c);
                            }
                            multipart = Some(mp);
                        }
                        Err(e) => break Err(put_err(e)),
                    }
                }
            }
            Some(Ok(Encoded::Done {
                sha256,
                size,
                uncompressed,
            })) => {
                let result = match multipart.take() {
                    Some(mp) => mp.finish().await.map(|_| ()).map_err(put_err),
                    None => {
                        let payload: PutPayload = pending.drain(..).collect();
                        store
                            .put(&object, payload)
                            .await
                            .map(|_| ())
                            .map_err(|e| CoreError::store("put", object.to_string(), e))
                    }
                };
                break result.map(|()| ArtifactRecord {
                    path: path.clone(),
                    size,
                    sha256,
                    content_type: options.content_type.clone(),
                    compression: options.compression,
                    uncompressed_size: uncompressed,
                });
            }
            Some(Err(e)) => break Err(e),
            None => {
                break Err(CoreError::Abandoned {
                    path: path.clone(),
                    reason: "the writer was dropped before finish".into(),
                })
            }
        }
    };
    match outcome {
        Ok(record) => {
            backup.make_private(&record.path).await?;
            backup.record(record.clone());
            Ok(record)
        }
        Err(e) => {
            if let Some(mp) = multipart {
                let _ = mp.abort().await;
            }
            Err(e)
        }
    }
}
